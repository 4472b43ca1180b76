"""A real Airflow deployment on loopback for integration tests: PostgreSQL metadata DB (the
machine's server, a fresh database per cluster), api-server, scheduler and dag-processor and, for
the CeleryExecutor, Celery workers on the machine's Redis, each in its own process group; driven
through the REST API v2 as the UI and users drive it.

It is the topology of docker-compose.yaml, natively: the same services, one process each."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from conftest import background_process, free_port, wait_for_http

POSTGRES = os.environ.get("AKM_TEST_POSTGRES", "postgresql+psycopg2://postgres@127.0.0.1:5432")
REDIS = os.environ.get("AKM_TEST_REDIS", "redis://127.0.0.1:6379/0")
TESTS = Path(__file__).resolve().parent


class AirflowCluster:
    def __init__(self, url: str, token: str, home: Path, database: str,
                 processes: dict[str, Any]):
        self.url, self._token, self.home, self.database = url, token, home, database
        self._processes = processes

    def dump_metadata_db(self) -> bytes:
        """The whole metadata DB (XCom, rendered fields, DAG run conf...) as pg_dump prints it."""
        return subprocess.run(["pg_dump", "-h", "127.0.0.1", "-U", "postgres", self.database],
                              check=True, capture_output=True, timeout=120).stdout

    def check_alive(self) -> None:
        """Fail at once, with its log, when a component died (rather than time out later)."""
        for name, process in self._processes.items():
            if process.poll() is not None:
                log = (self.home / f"{name}.log").read_text()[-4000:]
                raise AssertionError(f"Airflow {name} exited with {process.returncode}:\n{log}")

    def api(self, method: str, path: str, body: dict | None = None) -> Any:
        request = urllib.request.Request(
            f"{self.url}/api/v2{path}",
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"Bearer {self._token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"null")

    def wait_for_dag(self, dag_id: str, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(urllib.error.HTTPError):
                self.api("GET", f"/dags/{dag_id}")
                return
            time.sleep(2)
        raise AssertionError(f"DAG {dag_id} was not parsed within {timeout}s")

    def trigger(self, dag_id: str, conf: dict | None = None, run_id: str | None = None) -> str:
        self.wait_for_dag(dag_id)
        self.api("PATCH", f"/dags/{dag_id}", {"is_paused": False})
        body = {"logical_date": None, "conf": conf or {}}
        if run_id is not None:
            body["dag_run_id"] = run_id
        run = self.api("POST", f"/dags/{dag_id}/dagRuns", body)
        return run["dag_run_id"]

    def clear_run(self, dag_id: str, run_id: str) -> None:
        """Clear a whole DAG run, as the UI's "Clear" of a run does: every task runs again."""
        self.api("POST", f"/dags/{dag_id}/dagRuns/{_quote(run_id)}/clear", {"dry_run": False})

    def clear_tasks(self, dag_id: str, run_id: str, task_ids: list[str] | None = None,
                    only_failed: bool = True, **options: bool) -> list[str]:
        """Clear tasks of one DAG run as the UI's Clear dialogs do (``clearTaskInstances``:
        only the failed ones by default, ``include_downstream``/``include_upstream`` as asked);
        returns the task ids cleared."""
        body = {"dry_run": False, "dag_run_id": run_id, "only_failed": only_failed, **options}
        if task_ids is not None:
            body["task_ids"] = task_ids
        cleared = self.api("POST", f"/dags/{dag_id}/clearTaskInstances", body)
        return sorted(t["task_id"] for t in cleared["task_instances"])

    def mark_run(self, dag_id: str, run_id: str, state: str) -> None:
        """Mark a DAG run success or failed, as the UI's "Mark run as" does."""
        self.api("PATCH", f"/dags/{dag_id}/dagRuns/{_quote(run_id)}", {"state": state})

    def mark_task(self, dag_id: str, run_id: str, task_id: str, state: str) -> None:
        """Mark one task success or failed, as the UI's "Mark as" of a task does."""
        self.api("PATCH", f"/dags/{dag_id}/dagRuns/{_quote(run_id)}/taskInstances/{task_id}",
                 {"new_state": state})

    def delete_run(self, dag_id: str, run_id: str) -> None:
        self.api("DELETE", f"/dags/{dag_id}/dagRuns/{_quote(run_id)}")

    def task_instance(self, dag_id: str, run_id: str, task_id: str) -> dict:
        return self.api("GET", f"/dags/{dag_id}/dagRuns/{_quote(run_id)}/taskInstances/{task_id}")

    def wait_for_task(self, dag_id: str, run_id: str, task_id: str, states: set[str],
                      timeout: float = 300) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            with contextlib.suppress(urllib.error.HTTPError):
                task = self.task_instance(dag_id, run_id, task_id)
                if task["state"] in states:
                    return task
            time.sleep(1)
        raise AssertionError(f"{task_id} of {run_id} not in {states} within {timeout}s")

    def wait(self, dag_id: str, run_id: str, timeout: float = 600) -> dict:
        deadline = time.monotonic() + timeout
        quoted = _quote(run_id)
        while time.monotonic() < deadline:
            self.check_alive()
            run = self.api("GET", f"/dags/{dag_id}/dagRuns/{quoted}")
            if run["state"] in ("success", "failed"):
                return run
            time.sleep(2)
        raise AssertionError(f"DAG run {run_id} did not finish within {timeout}s")

    def dag_runs(self, dag_id: str) -> list[dict]:
        return self.api("GET", f"/dags/{dag_id}/dagRuns?order_by=run_after")["dag_runs"]

    def wait_for_runs(
        self, dag_id: str, count: int, run_type: str | None = None, timeout: float = 600
    ) -> list[dict]:
        """The first ``count`` finished runs of ``dag_id`` (of ``run_type``), once they exist."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            runs = [r for r in self.dag_runs(dag_id) if run_type in (None, r["run_type"])]
            if len(runs) >= count and all(r["state"] in ("success", "failed") for r in runs[:count]):
                return runs[:count]
            time.sleep(3)
        raise AssertionError(f"{dag_id}: {count} {run_type or ''} runs not finished in {timeout}s: "
                             f"{[(r['run_id'], r['state']) for r in self.dag_runs(dag_id)]}")

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        return self.api("GET", f"/dags/{dag_id}/dagRuns/{_quote(run_id)}/taskInstances")[
            "task_instances"]


def login(url: str, username: str, password: str) -> str:
    """A bearer token for the REST API, as the UI gets one (``POST /auth/token``)."""
    request = urllib.request.Request(
        f"{url}/auth/token", method="POST",
        data=json.dumps({"username": username, "password": password}).encode(),
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["access_token"]


UNREACHABLE_DB = "postgresql+psycopg2://nobody@127.0.0.1:9/no_metadata_db_for_workers"


def worker_env(env: dict[str, str]) -> dict[str, str]:
    """What a Celery worker gets, as docker-compose.yaml gives it: Airflow 3's task execution
    goes through the api-server, so no metadata DB (a URL that cannot connect: any use of the DB
    fails the task) and no JWT signing secret (each workload brings its own token)."""
    return {**{k: v for k, v in env.items() if k != "AIRFLOW__API_AUTH__JWT_SECRET"},
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": UNREACHABLE_DB}


def _quote(run_id: str) -> str:
    """``run_id`` as one path segment; a run id of only dots (Airflow accepts `.`) percent-encoded,
    or it would be read as a relative path step."""
    if set(run_id) == {"."}:
        return "%2E" * len(run_id)
    return urllib.request.quote(run_id, safe="")


@contextlib.contextmanager
def airflow_cluster(
    root: Path, dags_folder: Path, executor: str = "LocalExecutor",
    extra_env: dict[str, str] | None = None, celery_workers: int = 0,
) -> Iterator[AirflowCluster]:
    home = root / "airflow-home"
    home.mkdir(parents=True)
    database = f"akm_{secrets.token_hex(6)}"
    admin = secrets.token_urlsafe(12)
    (home / "passwords.json").write_text(json.dumps({"admin": admin}))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": executor,
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"{POSTGRES}/{database}",
        "AIRFLOW__API__BASE_URL": url,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{url}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": "worker_identity.hostname",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        # Workers wait up to 5 s for the execution API by default; with several DAG runs on 2
        # cores the api-server can be slower, and a task then fails before it starts.
        "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "30",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])),
        **(extra_env or {}),
    }
    queue = f"akm_{secrets.token_hex(4)}"  # isolates this cluster's tasks on a shared Redis
    if executor == "CeleryExecutor":
        env.update({
            "AIRFLOW__CELERY__BROKER_URL": REDIS,
            # Redis, not the metadata DB: the workers must not need the DB (see worker_env)
            "AIRFLOW__CELERY__RESULT_BACKEND": REDIS,
            "AIRFLOW__OPERATORS__DEFAULT_QUEUE": queue,
        })
    airflow = str(Path(sys.executable).with_name("airflow"))
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-c", f"CREATE DATABASE {database}"],
                   check=True, capture_output=True)
    try:
        migrate = subprocess.run([airflow, "db", "migrate"], env=env, capture_output=True,
                                 text=True, timeout=600)
        assert migrate.returncode == 0, migrate.stdout[-3000:] + migrate.stderr[-3000:]
        with contextlib.ExitStack() as stack:
            api = stack.enter_context(background_process(
                [airflow, "api-server", "--port", str(port)], home / "api-server.log", env))
            processes = {"api-server": api}
            for name in ("scheduler", "dag-processor"):
                processes[name] = stack.enter_context(
                    background_process([airflow, name], home / f"{name}.log", env))
            for index in range(celery_workers):  # one task at a time each: parallel = two workers
                processes[f"worker{index}"] = stack.enter_context(background_process(
                    [airflow, "celery", "worker", "--concurrency", "1", "--queues", queue,
                     "--celery-hostname", f"worker{index}@%h"],
                    home / f"worker{index}.log",
                    {**worker_env(env), "AKM_WORKER_NAME": f"worker{index}"}))
            wait_for_http(f"{url}/api/v2/monitor/health", api, home / "api-server.log", timeout=180)
            yield AirflowCluster(url, login(url, "admin", admin), home, database, processes)
    finally:
        subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-c",
                        f"DROP DATABASE IF EXISTS {database} WITH (FORCE)"], capture_output=True)
