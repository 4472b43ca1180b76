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
        "AIRFLOW_JWT_SECRET": token(), "AIRFLOW_FERNET_KEY": Fernet.generate_key().decode(),
        "AIRFLOW_UI_USERS": "admin:admin",
    }


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
    try:
        stack.compose("up", "-d")
        _wait_for_api(stack)
        yield stack
    finally:
        if os.environ.get("AKM_COMPOSE_KEEP") != "1":
            stack.compose("down", "-v", "--remove-orphans", check=False)


def test_placeholders_of_env_example_stop_the_stack_before_anything_starts(stack):
    refused = stack.compose("run", "--rm", "--no-deps", "preflight",
                            env_file=REPO / ".env.example", check=False)
    assert refused.returncode != 0
    output = refused.stdout + refused.stderr
    assert "preflight: POSTGRES_PASSWORD is still the placeholder of .env.example" in output
    assert "change-me" not in output.replace(".env.example", "")  # the setting, never its value


def test_training_dag_runs_green_on_the_celery_workers_with_one_mlflow_run(stack):
    from mlflow.tracking import MlflowClient

    airflow = stack.airflow()
    run_id = airflow.trigger(TRAINING)
    run = airflow.wait(TRAINING, run_id, timeout=1500)
    tasks = airflow.task_instances(TRAINING, run_id)
    assert run["state"] == "success", ([(t["task_id"], t["state"]) for t in tasks], stack.logs())
    assert {t["state"] for t in tasks} == {"success"} and len(tasks) == 10

    client = MlflowClient(MLFLOW)
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
    for name, value in stack.settings.items():
        if name not in ("POSTGRES_USER", "AIRFLOW_UI_USERS"):
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


def test_the_mlflow_server_is_published_on_loopback_only(stack):
    """It has no login of its own (Airflow's UI, which has, is published on 8080)."""
    ports = stack.compose("port", "mlflow", "5000").stdout.strip()
    assert ports == "127.0.0.1:5000", ports
