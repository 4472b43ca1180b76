"""docker-compose.yaml brought up for real: the whole stack on a Docker engine, the example's S3
training DAG triggered through the REST API and run by the Celery workers.

No image registry is reachable where this project is tested, so the stack runs on the stand-in
images of docker/standins/ (docker/standins/docker-compose.standins.yaml says exactly what
differs). Opt-in, as it builds images (about 10 minutes the first time):
``scripts/test-compose-stack.sh`` (starts the engine if needed, builds the stand-ins, runs this).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from airflow_cluster import AirflowCluster, login
from conftest import REPO

pytestmark = [
    pytest.mark.slow,
    pytest.mark.compose,
    pytest.mark.timeout(2700),  # the first test waits for the images to build
    pytest.mark.skipif(os.environ.get("AKM_COMPOSE_STACK") != "1",
                       reason="brings up docker-compose.yaml on Docker: scripts/test-compose-stack.sh"),
]

PROJECT = "akm-compose-test"
TRAINING = "wine_classifier_s3"
BUCKET = "wine-classifier"
API = "http://127.0.0.1:8080"
MLFLOW = "http://127.0.0.1:5000"
S3 = "http://127.0.0.1:9000"  # published by the stand-ins' override only


def _compose_command() -> list[str]:
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    pytest.fail("neither `docker compose` nor docker-compose is installed")


def _settings() -> dict[str, str]:
    """A .env as an operator writes it: every value set, secrets long and random."""
    from cryptography.fernet import Fernet

    def token() -> str:
        return secrets.token_urlsafe(24)

    return {
        "POSTGRES_USER": "airflow", "POSTGRES_PASSWORD": token(), "REDIS_PASSWORD": token(),
        "S3_ROOT_USER": f"root-{secrets.token_hex(4)}", "S3_ROOT_PASSWORD": token(),
        "S3_APP_ACCESS_KEY": f"workers-{secrets.token_hex(4)}", "S3_APP_SECRET_KEY": token(),
        "MLFLOW_S3_ACCESS_KEY": f"mlflow-{secrets.token_hex(4)}", "MLFLOW_S3_SECRET_KEY": token(),
        "MLFLOW_DB_PASSWORD": token(), "MLFLOW_ADMIN_USER": "admin",
        "MLFLOW_ADMIN_PASSWORD": token(), "MLFLOW_WORKERS_USER": "airflow-workers",
        "MLFLOW_WORKERS_PASSWORD": token(), "MLFLOW_FLASK_SECRET_KEY": token(),
        "AIRFLOW_JWT_SECRET": secrets.token_urlsafe(64),
        "AIRFLOW_FERNET_KEY": Fernet.generate_key().decode(),
        # 64 bytes: Airflow signs with HS512, and PyJWT warns of a shorter key
        "AIRFLOW_API_SECRET_KEY": secrets.token_urlsafe(64), "AIRFLOW_UI_USERS": "admin:admin",
    }


NOT_SECRET = ("POSTGRES_USER", "AIRFLOW_UI_USERS", "MLFLOW_ADMIN_USER", "MLFLOW_WORKERS_USER")


class Stack:
    def __init__(self, env_file: Path, settings: dict[str, str]) -> None:
        self.env_file, self.settings = env_file, settings
        self._compose = _compose_command()

    def compose(self, *args: str, env_file: Path | None = None, check: bool = True,
                timeout: float = 1800) -> subprocess.CompletedProcess:
        command = [*self._compose, "-p", PROJECT, "--env-file", str(env_file or self.env_file),
                   "-f", str(REPO / "docker-compose.yaml"),
                   "-f", str(REPO / "docker" / "standins" / "docker-compose.standins.yaml"), *args]
        result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed:\n{result.stdout[-5000:]}\n"
                                 f"{result.stderr[-5000:]}")
        return result

    def exec(self, service: str, *command: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.compose("exec", "-T", service, *command, check=check, timeout=300)

    def logs(self) -> str:
        return self.compose("logs", "--no-color", "--tail", "80", check=False).stdout

    def airflow(self) -> AirflowCluster:
        """The REST API as a user drives it, logged in with the password Airflow generated."""
        passwords = json.loads(self.exec(
            "airflow-apiserver", "cat",
            "/opt/airflow/simple_auth_manager_passwords.json.generated").stdout)
        return AirflowCluster(API, login(API, "admin", passwords["admin"]), REPO, database="",
                              processes={})

    def secrets(self) -> dict[str, str]:
        return {name: value for name, value in self.settings.items() if name not in NOT_SECRET}

    def mlflow(self, user: str = "MLFLOW_ADMIN"):
        """An MLflow client logged in as ``user`` (a person: the admin; or the workers)."""
        from mlflow.tracking import MlflowClient

        os.environ["MLFLOW_TRACKING_USERNAME"] = self.settings[f"{user}_USER"]
        os.environ["MLFLOW_TRACKING_PASSWORD"] = self.settings[f"{user}_PASSWORD"]
        return MlflowClient(MLFLOW)

    def containers(self) -> list[dict]:
        ids = self.compose("ps", "-q").stdout.split()
        return json.loads(subprocess.run(["docker", "inspect", *ids], capture_output=True,
                                         text=True, check=True).stdout)

    def s3(self):
        import boto3

        return boto3.client("s3", endpoint_url=S3, region_name="us-east-1",
                            aws_access_key_id=self.settings["S3_ROOT_USER"],
                            aws_secret_access_key=self.settings["S3_ROOT_PASSWORD"])


def _wait_for_api(stack: Stack, timeout: float = 900) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{API}/api/v2/version", timeout=5):
                return
        except OSError:
            time.sleep(5)
    raise AssertionError(f"the api-server did not answer in {timeout}s:\n{stack.logs()}")


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Stack:
    root = tmp_path_factory.mktemp("compose")
    settings = _settings()
    env_file = root / "stack.env"
    env_file.write_text("".join(f"{key}={value}\n" for key, value in settings.items()))
    stack = Stack(env_file, settings)
    stack.compose("down", "-v", "--remove-orphans", check=False)
    stack.compose("build")
    saved = {name: os.environ.get(name) for name in ("MLFLOW_TRACKING_USERNAME",
                                                     "MLFLOW_TRACKING_PASSWORD")}
    try:
        stack.compose("up", "-d")
        _wait_for_api(stack)
        yield stack
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        if os.environ.get("AKM_COMPOSE_KEEP") != "1":
            stack.compose("down", "-v", "--remove-orphans", check=False)


@pytest.fixture(scope="module")
def training_run(stack) -> str:
    """One run of the training DAG, triggered through the REST API, run by the Celery workers."""
    airflow = stack.airflow()
    run_id = airflow.trigger(TRAINING)
    airflow.wait(TRAINING, run_id, timeout=1500)
    return run_id


def test_placeholders_of_env_example_stop_the_stack_before_anything_starts(stack):
    refused = stack.compose("run", "--rm", "--no-deps", "preflight",
                            env_file=REPO / ".env.example", check=False)
    assert refused.returncode != 0
    output = refused.stdout + refused.stderr
    assert "preflight: POSTGRES_PASSWORD is still the placeholder of .env.example" in output
    assert "change-me" not in output.replace(".env.example", "")  # the setting, never its value


def test_training_dag_runs_green_on_the_celery_workers_with_one_mlflow_run(stack, training_run):
    airflow = stack.airflow()
    run_id = training_run
    run = airflow.wait(TRAINING, run_id)
    tasks = airflow.task_instances(TRAINING, run_id)
    assert run["state"] == "success", ([(t["task_id"], t["state"]) for t in tasks], stack.logs())
    assert {t["state"] for t in tasks} == {"success"} and len(tasks) == 10

    client = stack.mlflow()
    experiment = client.get_experiment_by_name(TRAINING)
    (parent,) = client.search_runs(
        [experiment.experiment_id],
        f"tags.`airflow_kedro_mlflow.role` = 'parent' and tags.`airflow.run_id` = '{run_id}'")
    assert parent.info.status == "FINISHED"
    children = client.search_runs([experiment.experiment_id],
                                  f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    assert len(children) == 7 and {c.info.status for c in children} == {"FINISHED"}

    # Catalog data in the bucket with the workers' key; MLflow artifacts under the MLflow server's
    # prefix, written by the server with its own key (proxied).
    s3 = stack.s3()
    keys = [obj["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
            for obj in page.get("Contents", [])]
    save_version = parent.data.tags["kedro.save_version"]
    assert f"data/01_raw/wine.csv/{save_version}/wine.csv" in keys
    assert any(key.startswith(f"mlflow-proxied/{experiment.experiment_id}/{parent.info.run_id}/")
               for key in keys), keys

    # No secret of .env in the task logs or in the runs' params and tags.
    logs = stack.exec("airflow-worker", "sh", "-c",
                      f"cat /opt/airflow/logs/dag_id={TRAINING}/run_id={run_id}/*/*.log").stdout
    assert logs.strip()  # (cat fails the exec when the run has no log file)
    runs = repr([(r.data.params, r.data.tags) for r in [parent, *children]])
    for name, value in stack.secrets().items():
        assert value not in logs, f"{name} is in a task log"
        assert value not in runs, f"{name} is in an MLflow run"


def test_workers_hold_only_their_scoped_key(stack):
    """In the running stack, not only on paper: the worker's environment has no metadata-DB URL,
    JWT secret, Fernet key or root S3 key, and its S3 key cannot write MLflow's artifacts."""
    env = stack.exec("airflow-worker", "env").stdout
    for name in ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__API_AUTH__JWT_SECRET",
                 "AIRFLOW__CORE__FERNET_KEY"):
        assert f"{name}=" not in env
    for name in ("POSTGRES_PASSWORD", "AIRFLOW_JWT_SECRET", "AIRFLOW_FERNET_KEY", "S3_ROOT_PASSWORD",
                 "MLFLOW_S3_SECRET_KEY"):
        assert stack.settings[name] not in env, f"the worker holds {name}"
    probe = (
        "import os, boto3, botocore\n"
        "s3 = boto3.client('s3', endpoint_url=os.environ['WINE_S3_ENDPOINT_URL'],"
        " aws_access_key_id=os.environ['WINE_S3_KEY'],"
        " aws_secret_access_key=os.environ['WINE_S3_SECRET'], region_name='us-east-1')\n"
        "s3.put_object(Bucket='wine-classifier', Key='data/probe', Body=b'1')\n"
        "try:\n"
        "    s3.put_object(Bucket='wine-classifier', Key='mlflow-proxied/probe', Body=b'1')\n"
        "    print('WROTE MLFLOW ARTIFACTS')\n"
        "except botocore.exceptions.ClientError as error:\n"
        "    print('DENIED', error.response['Error']['Code'])\n"
    )
    assert stack.exec("airflow-worker", "python", "-c", probe).stdout.strip() == \
        "DENIED AccessDenied"


def test_every_ui_is_published_on_loopback_by_default(stack):
    assert stack.compose("port", "mlflow", "5000").stdout.strip() == "127.0.0.1:5000"
    assert stack.compose("port", "airflow-apiserver", "8080").stdout.strip() == "127.0.0.1:8080"


def test_a_worker_cannot_write_a_dag_file_or_the_project(stack):
    """The dag-processor, which holds the DB URL, runs these files: no task may change them,
    whatever user it runs as."""
    for path in ("/opt/airflow/dags/wine_classifier_s3.py",
                 "/opt/airflow/examples/wine_classifier/src/wine_classifier/settings.py"):
        tried = stack.compose("exec", "-T", "-u", "root", "airflow-worker", "sh", "-c",
                              f"echo 'import os' >> {path}", check=False)  # even as root
        assert tried.returncode != 0 and "Read-only file system" in tried.stderr, tried


def test_mlflow_refuses_anonymous_requests_and_accepts_the_workers_user(stack):
    import base64
    import urllib.error

    url = f"{MLFLOW}/api/2.0/mlflow/experiments/search?max_results=1"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(url, timeout=30)
    assert refused.value.code == 401
    login = f"{stack.settings['MLFLOW_WORKERS_USER']}:{stack.settings['MLFLOW_WORKERS_PASSWORD']}"
    request = urllib.request.Request(url, headers={
        "Authorization": "Basic " + base64.b64encode(login.encode()).decode()})
    with urllib.request.urlopen(request, timeout=30) as answer:
        assert answer.status == 200


def test_mlflows_database_role_cannot_open_airflows_database(stack):
    probe = (
        "import os, psycopg2\n"
        "from sqlalchemy.engine import make_url\n"
        "url = make_url(os.environ['MLFLOW_BACKEND_STORE_URI'])\n"
        "def open(db):\n"
        "    try:\n"
        "        psycopg2.connect(host=url.host, user=url.username, password=url.password,"
        " dbname=db).close()\n"
        "        return 'OPENED'\n"
        "    except psycopg2.OperationalError as error:\n"
        "        return 'REFUSED' if 'permission denied' in str(error) else repr(error)\n"
        "print(open('mlflow'), open('airflow'), open('postgres'))\n"
    )
    assert stack.exec("mlflow", "python", "-c", probe).stdout.split() == [
        "OPENED", "REFUSED", "REFUSED"]


def test_no_secret_on_any_command_line(stack):
    """Neither in what Docker started (entrypoint, command) nor in the host's process list,
    where every container's processes are visible."""
    processes = subprocess.run(["ps", "-eww", "-o", "args"], capture_output=True, text=True,
                               check=True).stdout
    started = json.dumps([(c["Name"], c["Path"], c["Args"]) for c in stack.containers()])
    assert "mlflow server" in processes and "redis-server" in processes  # the scan sees them
    for name, value in stack.secrets().items():
        assert value not in processes, f"{name} is on a command line"
        assert value not in started, f"{name} is in a container's command"


def test_every_container_is_healthy_the_scheduler_included(stack):
    deadline = time.monotonic() + 300
    while True:
        health = {c["Name"].lstrip("/"): c["State"].get("Health", {}).get("Status")
                  for c in stack.containers() if c["State"]["Running"]}
        if all(status in ("healthy", None) for status in health.values()) or (
                time.monotonic() > deadline):
            break
        time.sleep(10)
    assert any("scheduler" in name and status == "healthy" for name, status in health.items())
    assert {name: s for name, s in health.items() if s not in ("healthy", None)} == {}
    assert sum(status == "healthy" for status in health.values()) >= 9, health


def test_a_task_log_reads_through_the_api_without_the_secret_key_warning(stack, training_run):
    """The api-server reads a running task's log from the worker's log server, signing the
    request with [api] secret_key: one value for every component, or the worker refuses (403)
    and the UI shows Airflow's "same 'secret_key'" warning."""
    airflow = stack.airflow()
    task_id = "data_processing.split_data"
    log = airflow.api("GET", f"/dags/{TRAINING}/dagRuns/{training_run}/taskInstances/"
                             f"{task_id}/logs/1?full_content=true")
    text = json.dumps(log)
    assert "Running node: split_data" in text, text[:2000]  # the task's own log
    assert "secret_key" not in text, text[:4000]
    # and straight from the worker's log server, as the api-server asks while a task runs
    host = airflow.task_instance(TRAINING, training_run, task_id)["hostname"]
    path = f"dag_id={TRAINING}/run_id={training_run}/task_id={task_id}/attempt=1.log"
    probe = ("from airflow.utils.log.file_task_handler import _fetch_logs_from_service\n"
             f"answer = _fetch_logs_from_service('http://{host}:8793/log/{path}', '{path}')\n"
             "print(answer.status_code, 'Running node: split_data' in answer.text)\n")
    answer = stack.exec("airflow-apiserver", "python", "-c", probe).stdout.strip().splitlines()
    assert answer[-1].split() == ["200", "True"], answer  # (before it: Airflow's warnings)
