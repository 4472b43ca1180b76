"""The demo: the example Kedro project exported to dags/ and run as a deployment runs it.

On the embedded default, all on loopback and inside this repository (``.airflow/``): an S3
endpoint (moto in server mode), an MLflow tracking server (SQLite, artifacts proxied to S3) and
Airflow's scheduler, dag-processor and API server (SQLite metadata DB, LocalExecutor, workers
preloaded with ``airflow_kedro_mlflow.preload`` as the README recommends). Runs are triggered
through the REST API, as the UI triggers them:

1. the training DAG with the project's parameters: its promotion gate makes the champion;
2. the inference DAG, started by the scheduler because the champion's Asset moved;
3. the training DAG again with a weaker random forest in the run's conf (Kedro runtime
   parameters, as the trigger form sets them): registered, kept out of ``@champion``, and no
   inference follows.

With ``--serve`` the services keep running afterwards, the Airflow and MLflow UIs on loopback,
until Ctrl-C (or SIGTERM), which stops everything the demo started. Each demo starts afresh:
what one demo tracks, stores and schedules lives and dies together.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
HOME = REPO / ".airflow"
STATE = HOME / "demo"
PROJECT = REPO / "examples" / "wine_classifier"
BIN = Path(sys.executable).parent
BUCKET = "wine-classifier"
TRAINING, INFERENCE = "wine_classifier_s3", "wine_classifier__inference_s3"
WEAKER_FOREST = {"random_forest": {"model_options": {
    "estimator": "random_forest", "n_estimators": 2, "max_depth": 1, "random_state": 42}}}
PRELOADED = re.compile(r"Worker preloaded by airflow_kedro_mlflow\.preload: ([\w.,-]+)")
"""What each task's log says its worker preloaded (runtime/task_runtime.py)."""
S3_KEYS = {"WINE_S3_KEY": "demo-access-key", "WINE_S3_SECRET": "demo-secret-key"}


class Stop(Exception):
    """SIGINT or SIGTERM: stop what the demo started."""


def _stop(signum: int, frame: Any) -> None:
    raise Stop(signal.Signals(signum).name)


def port(preferred: int | None = None) -> int:
    """``preferred`` when it is free on loopback (stable URLs for the UIs), else any free one."""
    for candidate in ([preferred] if preferred else []) + [0]:
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind
            try:
                sock.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            return sock.getsockname()[1]
    raise RuntimeError("no free port on 127.0.0.1")


class Services:
    """Background servers, each in its own process group, stopped (whole group) in reverse."""

    def __init__(self) -> None:
        self._started: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, command: list[str], env: dict[str, str]) -> subprocess.Popen:
        with open(STATE / f"{name}.log", "wb") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                                       start_new_session=True)
        self._started.append((name, process))
        return process

    def check(self) -> None:
        for name, process in self._started:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited ({process.returncode}); its log: "
                                   f"{STATE / (name + '.log')}\n{_tail(STATE / (name + '.log'))}")

    def stop(self) -> None:
        for _, process in reversed(self._started):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for _, process in reversed(self._started):
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=30)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)  # what the leader left in its group
        self._started.clear()


def _tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


def wait_for(url: str, services: Services, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        services.check()
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f}s")


def step(text: str) -> None:
    print(f"==> {text}", flush=True)


class AirflowApi:
    """The REST API v2, as the UI uses it."""

    def __init__(self, url: str, username: str, password: str) -> None:
        self.url = url
        request = urllib.request.Request(
            f"{url}/auth/token", method="POST", headers={"Content-Type": "application/json"},
            data=json.dumps({"username": username, "password": password}).encode())
        with urllib.request.urlopen(request, timeout=30) as response:
            self._token = json.loads(response.read())["access_token"]

    def call(self, method: str, path: str, body: dict | None = None) -> Any:
        request = urllib.request.Request(
            f"{self.url}/api/v2{path}", method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self._token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"null")

    def wait_for_dags(self, dag_ids: list[str], services: Services, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        missing = list(dag_ids)
        while missing and time.monotonic() < deadline:
            services.check()
            for dag_id in list(missing):
                with contextlib.suppress(urllib.error.HTTPError):
                    self.call("GET", f"/dags/{dag_id}")
                    missing.remove(dag_id)
            time.sleep(2)
        if missing:
            raise RuntimeError(f"DAGs not parsed within {timeout:.0f}s: {missing}; see "
                               f"{STATE / 'dag-processor.log'}")

    def trigger(self, dag_id: str, conf: dict | None = None) -> str:
        run = self.call("POST", f"/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf or {}})
        return run["dag_run_id"]

    def runs(self, dag_id: str) -> list[dict]:
        return self.call("GET", f"/dags/{dag_id}/dagRuns?order_by=run_after")["dag_runs"]

    def wait(self, dag_id: str, run_id: str, services: Services, timeout: float = 900) -> dict:
        deadline = time.monotonic() + timeout
        quoted = urllib.parse.quote(run_id, safe="")
        while time.monotonic() < deadline:
            services.check()
            run = self.call("GET", f"/dags/{dag_id}/dagRuns/{quoted}")
            if run["state"] in ("success", "failed"):
                return run
            time.sleep(2)
        raise RuntimeError(f"{dag_id} run {run_id} did not finish within {timeout:.0f}s")

    def wait_for_new_run(self, dag_id: str, known: set[str], services: Services,
                         timeout: float = 300) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            services.check()
            new = [run for run in self.runs(dag_id) if run["dag_run_id"] not in known]
            if new:
                return self.wait(dag_id, new[0]["dag_run_id"], services)
            time.sleep(2)
        raise RuntimeError(f"the scheduler started no {dag_id} run within {timeout:.0f}s")


@dataclass(frozen=True)
class Site:
    """Where the demo's services listen on loopback, and the Airflow UI's login."""

    airflow: int
    mlflow: int
    s3: int
    worker_logs: int
    trigger_logs: int
    password: str

    @property
    def airflow_url(self) -> str:
        return f"http://127.0.0.1:{self.airflow}"


def environment() -> tuple[dict[str, str], Site]:
    """The environment of every service, and where they listen."""
    site = Site(airflow=port(8080), mlflow=port(5000), s3=port(), worker_logs=port(),
                trigger_logs=port(), password=secrets.token_urlsafe(12))
    (HOME / "passwords.json").write_text(json.dumps({"admin": site.password}))
    airflow_url = site.airflow_url
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLFLOW", "WINE_"))},
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "KEDRO_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1",
        "AIRFLOW_HOME": str(HOME),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{HOME / 'airflow.db'}",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "2",  # the machine's cores, not Airflow's default of 32
        "AIRFLOW__API__BASE_URL": airflow_url,
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{airflow_url}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),
        "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(HOME / "passwords.json"),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(site.worker_logs),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(site.trigger_logs),
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
        # Preloaded workers (README, "Preloaded workers"): the LocalExecutor forks each task
        # from a server that imported Kedro, the task runtime and the project's libraries once.
        "AIRFLOW__CORE__MP_START_METHOD": "forkserver",
        "AIRFLOW__CORE__MP_FORKSERVER_PRELOAD":
            "airflow,airflow.executors.local_executor,airflow_kedro_mlflow.preload",
        "AIRFLOW__KEDRO_MLFLOW__PRELOAD_PROJECTS": str(PROJECT),
        # The project's `s3` env reads these through conf/s3/credentials.yml (moto accepts any).
        "WINE_S3_ENDPOINT_URL": f"http://127.0.0.1:{site.s3}",
        **S3_KEYS,
        "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{site.mlflow}",
    }
    return env, site


def start_storage_and_tracking(services: Services, env: dict[str, str], site: Site) -> None:
    s3_url = env["WINE_S3_ENDPOINT_URL"]
    services.start("moto", [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(site.s3)],
                   env)
    wait_for(f"{s3_url}/moto-api/", services)
    import boto3

    boto3.client("s3", endpoint_url=s3_url, region_name="us-east-1",
                 aws_access_key_id=env["WINE_S3_KEY"],
                 aws_secret_access_key=env["WINE_S3_SECRET"]).create_bucket(Bucket=BUCKET)
    step(f"S3 endpoint on {s3_url} (moto), bucket {BUCKET}")
    # MLflow: runs in SQLite, artifacts proxied to S3 with the server's own keys (the tasks get
    # none for MLflow's artifacts), as docker-compose.yaml deploys it.
    mlflow_env = {**env, "AWS_ACCESS_KEY_ID": "demo-mlflow-key",
                  "AWS_SECRET_ACCESS_KEY": "demo-mlflow-secret", "MLFLOW_S3_ENDPOINT_URL": s3_url}
    services.start("mlflow", [
        str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(site.mlflow),
        "--workers", "1", "--backend-store-uri", f"sqlite:///{STATE / 'mlflow.db'}",
        "--artifacts-destination", f"s3://{BUCKET}/mlflow"], mlflow_env)
    wait_for(f"{env['MLFLOW_TRACKING_URI']}/health", services)
    step(f"MLflow tracking server on {env['MLFLOW_TRACKING_URI']} (runs in {STATE / 'mlflow.db'}, "
         f"artifacts on s3://{BUCKET}/mlflow)")


def export(env: dict[str, str]) -> None:
    step("kedro airflow export --env s3 -p __default__ -p inference "
         "(examples/wine_classifier -> dags/)")
    done = subprocess.run(
        [str(BIN / "kedro"), "airflow", "export", "--env", "s3", "-p", "__default__", "-p",
         "inference", "--target-dir", str(REPO / "dags"), "--check"],
        cwd=PROJECT, env=env, capture_output=True, text=True)
    (STATE / "export.log").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise RuntimeError(f"export failed:\n{(done.stdout + done.stderr)[-4000:]}")
    table = done.stdout[done.stdout.index("DAG "):].split("\n\n")[0]  # without Kedro's log lines
    print(table, flush=True)


def start_airflow(services: Services, env: dict[str, str], site: Site) -> AirflowApi:
    step(f"Airflow metadata DB: {HOME / 'airflow.db'} (SQLite)")
    done = subprocess.run([str(BIN / "airflow"), "db", "migrate"], env=env, capture_output=True,
                          text=True)
    (STATE / "db-migrate.log").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise RuntimeError(f"airflow db migrate failed:\n{(done.stdout + done.stderr)[-4000:]}")
    airflow = str(BIN / "airflow")
    services.start("api-server", [airflow, "api-server", "--host", "127.0.0.1", "--port",
                                  str(site.airflow)], env)
    for component in ("scheduler", "dag-processor"):
        services.start(component, [airflow, component], env)
    wait_for(f"{site.airflow_url}/api/v2/monitor/health", services)
    step(f"Airflow api-server on {site.airflow_url}, scheduler (LocalExecutor, preloaded "
         "workers) and dag-processor")
    api = AirflowApi(site.airflow_url, "admin", site.password)
    dag_ids = sorted(path.stem for path in (REPO / "dags").glob("*.py"))
    api.wait_for_dags(dag_ids, services)
    for dag_id in dag_ids:  # every DAG of dags/ can run while the demo's services live
        api.call("PATCH", f"/dags/{dag_id}", {"is_paused": False})
    return api


def run_the_story(api: AirflowApi, services: Services) -> list[tuple[dict, str]]:
    """The three runs; each with what it was."""
    runs = []
    known = {run["dag_run_id"] for run in api.runs(INFERENCE)}
    step(f"POST /api/v2/dags/{TRAINING}/dagRuns (the project's parameters)")
    first = api.wait(TRAINING, api.trigger(TRAINING), services)
    runs.append((first, "REST trigger, the project's parameters"))
    _check(first)
    step(f"waiting for the scheduler to start {INFERENCE} (its schedule: the champion's Asset)")
    inference = api.wait_for_new_run(INFERENCE, known, services)
    runs.append((inference, "started by the scheduler when the gate moved @champion"))
    _check(inference)
    known.add(inference["dag_run_id"])
    step(f"POST /api/v2/dags/{TRAINING}/dagRuns with conf {json.dumps(WEAKER_FOREST)}")
    second = api.wait(TRAINING, api.trigger(TRAINING, WEAKER_FOREST), services)
    runs.append((second, "REST trigger, conf: a weaker random forest"))
    _check(second)
    time.sleep(15)  # several scheduler loops: an inference run would have been created by now
    extra = [run for run in api.runs(INFERENCE) if run["dag_run_id"] not in known]
    if extra:
        raise RuntimeError(f"{INFERENCE} ran again although no model was promoted: {extra}")
    return runs


def _check(run: dict) -> None:
    print(f"    {run['dag_id']} {run['dag_run_id']}: {run['state']}", flush=True)
    if run["state"] != "success":
        raise RuntimeError(f"{run['dag_id']} run {run['dag_run_id']} ended {run['state']}; task "
                           f"logs under {HOME / 'logs'}")


def report(runs: list[tuple[dict, str]], env: dict[str, str]) -> None:
    """What each run did: Airflow's view, MLflow's parent runs and the gate, S3's objects."""
    from mlflow.tracking import MlflowClient

    print("\nAirflow DAG runs (scheduler, LocalExecutor):")
    for run, how in runs:
        print(f"  {run['dag_id']:<30} {run['run_type']:<16} {run['state']:<8} {how}")
    preloaded = sorted({found for log in (HOME / "logs").rglob("*.log")
                        for found in PRELOADED.findall(log.read_text(errors="replace"))})
    print(f"  task processes forked from preloaded workers: {', '.join(preloaded) or 'none seen'}")
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name(TRAINING)
    trainings = client.search_runs(
        [experiment.experiment_id],
        "tags.`airflow_kedro_mlflow.role` = 'parent' and tags.`kedro.pipeline` = '__default__'",
        order_by=["attributes.start_time ASC"])
    print(f"\nMLflow ({env['MLFLOW_TRACKING_URI']}, experiment '{TRAINING}'):")
    for number, parent in enumerate(trainings, start=1):
        print(f"  Training {number}: parent run {parent.info.run_id} ({parent.info.status})")
        for key in ("random_forest.accuracy", "logistic_regression.accuracy"):
            if key in parent.data.metrics:
                print(f"    {key} = {parent.data.metrics[key]}")
        tags = parent.data.tags
        if "promotion.decision" in tags:
            decision = tags["promotion.decision"].replace("not_promoted", "kept out")
            print(f"    Promotion gate: {decision} ({tags['promotion.reason']}); model "
                  f"'{tags['promotion.registered_model']}' version {tags['promotion.model_version']}")
    copy_s3(env, HOME / "demo-s3")


def copy_s3(env: dict[str, str], target: Path) -> None:
    """The S3 endpoint lives only as long as the demo: its objects are copied for a look after."""
    import boto3

    shutil.rmtree(target, ignore_errors=True)
    s3 = boto3.client("s3", endpoint_url=env["WINE_S3_ENDPOINT_URL"], region_name="us-east-1",
                      aws_access_key_id=env["WINE_S3_KEY"],
                      aws_secret_access_key=env["WINE_S3_SECRET"])
    keys = [obj["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
            for obj in page.get("Contents", [])]
    for key in keys:
        (target / key).parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(BUCKET, key, str(target / key))
    folders = sorted({"/".join(key.split("/")[:3]) for key in keys})
    print(f"\nS3 ({env['WINE_S3_ENDPOINT_URL']}, bucket {BUCKET}): {len(keys)} objects, copied to "
          f"{target.relative_to(REPO)}/")
    for folder in folders:
        print(f"  s3://{BUCKET}/{folder}/...")
    print(f"Reports: {target.relative_to(REPO)}/data/08_reporting/*/metrics.json and "
          "confusion_matrix.png")


def serve(services: Services, site: Site, env: dict[str, str]) -> None:
    print(f"""
Airflow UI: {site.airflow_url}   user admin, password {site.password}
            (also in {(HOME / 'passwords.json').relative_to(REPO)})
MLflow UI:  {env['MLFLOW_TRACKING_URI']}
Every DAG of dags/ is unpaused and can run while this lasts; task logs open in the UI, and each
task's "MLflow run" link opens its run. Ctrl-C stops everything the demo started.""", flush=True)
    while True:
        services.check()
        time.sleep(2)


@contextlib.contextmanager
def fresh_state() -> Iterator[None]:
    """A new metadata DB, MLflow store and task logs for each demo."""
    HOME.mkdir(exist_ok=True)
    shutil.rmtree(STATE, ignore_errors=True)
    shutil.rmtree(HOME / "logs", ignore_errors=True)
    for name in ("airflow.db", "airflow.db-wal", "airflow.db-shm"):
        (HOME / name).unlink(missing_ok=True)
    STATE.mkdir(parents=True)
    yield


def write_env_file(env: dict[str, str]) -> None:
    """``.airflow/env.sh``: the demo's Airflow from a shell (``airflow dags list``...)."""
    names = ("AIRFLOW_HOME", "AIRFLOW__CORE__DAGS_FOLDER", "AIRFLOW__CORE__LOAD_EXAMPLES",
             "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "KEDRO_DISABLE_TELEMETRY", "DO_NOT_TRACK")
    lines = ["# source this file to use the demo's Airflow from a shell: airflow dags list...",
             *(f"export {name}={env[name]!r}" for name in names),
             f"export PATH={str(BIN)!r}:\"$PATH\""]
    (HOME / "env.sh").write_text("\n".join(lines) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve", action="store_true",
                        help="keep the Airflow and MLflow UIs running after the runs, until Ctrl-C")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    services = Services()
    try:
        with fresh_state():
            env, site = environment()
            write_env_file(env)
            start_storage_and_tracking(services, env, site)
            export(env)
            api = start_airflow(services, env, site)
            report(run_the_story(api, services), env)
            if args.serve:
                serve(services, site, env)
    except Stop as stop:
        print(f"\n{stop}: stopping the demo's services", flush=True)
        return 0 if args.serve else 130
    except RuntimeError as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the stop itself is not interrupted
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        services.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
