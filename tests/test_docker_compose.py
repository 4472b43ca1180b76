"""docker-compose.yaml is not brought up here (no image registry: its base images cannot be
pulled); these tests check the deployment it describes, its hardening, and run its preflight
check for real. The integration tests run the same topology natively, workers as restricted."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import PurePosixPath

import pytest
import yaml
from conftest import REPO

COMPOSE = yaml.safe_load((REPO / "docker-compose.yaml").read_text())
SERVICES = COMPOSE["services"]
CORE = ["airflow-init", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
        "airflow-triggerer"]
AIRFLOW = [*CORE, "airflow-worker"]
SECRET_NAME = re.compile(r"PASSWORD|SECRET|KEY|TOKEN|FERNET", re.IGNORECASE)
# ${VAR} from .env (required with :?, or a setting with a :- default); $${VAR} the container's
REFERENCE = re.compile(r"(?<!\$)\$\{(\w+)(:\?[^}]*)?(:-[^}]*)?\}")
PLACEHOLDERS = {line.split("=", 1)[0]: line.split("=", 1)[1]
                for line in (REPO / ".env.example").read_text().splitlines()
                if line and not line.startswith("#")}


def _environment(service: dict) -> dict[str, str]:
    env = service.get("environment", {})
    return dict(env) if isinstance(env, dict) else dict(item.split("=", 1) for item in env)


def test_stack_has_every_service_of_the_deployment():
    assert set(SERVICES) == {"preflight", "postgres", "redis", "minio", "minio-init", "mlflow",
                             "mlflow-init", *AIRFLOW}
    commands = {name: SERVICES[name].get("command") for name in AIRFLOW}
    assert commands["airflow-apiserver"] == "api-server"
    assert commands["airflow-scheduler"] == "scheduler"
    assert commands["airflow-dag-processor"] == "dag-processor"
    assert commands["airflow-triggerer"] == "triggerer"
    assert commands["airflow-worker"] == "celery worker"
    for name in AIRFLOW:
        env = _environment(SERVICES[name])
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://")
        assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("redis://")
    for name in CORE:
        env = _environment(SERVICES[name])
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
        assert "@postgres/" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert "@postgres/mlflow" in _environment(SERVICES["mlflow"])["MLFLOW_BACKEND_STORE_URI"]


def test_workers_get_no_metadata_db_no_signing_secret_and_no_fernet_key():
    """Airflow 3's security model: user code runs on the workers, which reach Airflow only
    through the api-server with their workload's token (tests/airflow_cluster.py runs its
    Celery workers so: a metadata-DB URL that cannot connect, no JWT secret)."""
    worker = _environment(SERVICES["airflow-worker"])
    for key in ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__API_AUTH__JWT_SECRET",
                "AIRFLOW__CORE__FERNET_KEY", "POSTGRES_PASSWORD"):
        assert key not in worker, key
    assert not any("POSTGRES" in str(value) for value in worker.values())
    for name in ("airflow-apiserver", "airflow-scheduler"):
        assert "AIRFLOW__API_AUTH__JWT_SECRET" in _environment(SERVICES[name])
    for name, service in SERVICES.items():  # no env_file: it would hand every value to all
        assert "env_file" not in service, name


def test_s3_root_credentials_reach_only_minio_and_scoped_keys_do_the_rest():
    for name, service in SERVICES.items():
        text = yaml.safe_dump(service)
        if name not in ("minio", "minio-init", "preflight"):
            assert "S3_ROOT" not in text, name
    worker = _environment(SERVICES["airflow-worker"])
    assert "S3_APP_ACCESS_KEY" in worker["WINE_S3_KEY"]
    assert "MLFLOW_S3_ACCESS_KEY" in _environment(SERVICES["mlflow"])["AWS_ACCESS_KEY_ID"]
    init = " ".join(SERVICES["minio-init"]["command"])
    for step in ("mc admin user add store \"$${S3_APP_ACCESS_KEY}\"",
                 "mc admin policy attach store akm-workers --user \"$${S3_APP_ACCESS_KEY}\"",
                 "mc admin policy attach store akm-mlflow --user \"$${MLFLOW_S3_ACCESS_KEY}\""):
        assert step in init
    import json

    workers = json.loads((REPO / "docker" / "minio-policies" / "workers.json").read_text())
    mlflow = json.loads((REPO / "docker" / "minio-policies" / "mlflow.json").read_text())
    assert {"Effect": "Deny", "Action": ["s3:PutObject", "s3:DeleteObject"],
            "Resource": ["arn:aws:s3:::wine-classifier/mlflow-proxied/*"]} in workers["Statement"]
    assert all(r.startswith("arn:aws:s3:::wine-classifier")
               for s in mlflow["Statement"] for r in s["Resource"])
    assert "s3:*" not in json.dumps([workers, mlflow])


def test_every_published_port_is_on_loopback_unless_the_env_file_says_otherwise():
    published = {name: service.get("ports", []) for name, service in SERVICES.items()}
    assert published["mlflow"] == ["127.0.0.1:${MLFLOW_PORT:-5000}:5000"]
    assert published["minio"] == ["127.0.0.1:9001:9001"]
    # The simple auth manager is for development: opening the UI is the operator's choice.
    assert published["airflow-apiserver"] == ["${AIRFLOW_API_BIND:-127.0.0.1}:8080:8080"]
    assert {name for name, ports in published.items() if ports} == {
        "mlflow", "minio", "airflow-apiserver"}


def test_mlflow_asks_for_a_login_and_keeps_to_its_own_database():
    mlflow = SERVICES["mlflow"]
    env = _environment(mlflow)
    command = " ".join(mlflow["command"])
    assert "--app-name basic-auth" in command
    assert "--backend-store-uri" not in command  # read from MLFLOW_BACKEND_STORE_URI: not in ps
    assert env["MLFLOW_BACKEND_STORE_URI"].startswith(
        "postgresql+psycopg2://mlflow:${MLFLOW_DB_PASSWORD:?")
    assert "POSTGRES_PASSWORD" not in yaml.safe_dump(mlflow)
    init = (REPO / "docker" / "postgres-init.sh").read_text()
    assert "REVOKE ALL ON DATABASE airflow FROM PUBLIC" in init
    assert "NOSUPERUSER" in init and "\\getenv mlflow_password MLFLOW_DB_PASSWORD" in init
    auth = (REPO / "docker" / "mlflow-auth.ini").read_text()
    assert "default_permission = READ" in auth and "admin_password" not in auth
    for name in AIRFLOW:  # workers and the scheduler's listener log in as the workers' user
        env = _environment(SERVICES[name])
        assert env["MLFLOW_TRACKING_USERNAME"].startswith("${MLFLOW_WORKERS_USER:?")
        assert env["MLFLOW_TRACKING_PASSWORD"].startswith("${MLFLOW_WORKERS_PASSWORD:?")


def test_workers_reach_only_what_they_need_and_nobody_writes_the_dags():
    assert SERVICES["airflow-worker"]["networks"] == ["tasks"]
    assert SERVICES["postgres"]["networks"] == ["metadata"]
    for name in ("redis", "minio", "mlflow", "airflow-apiserver"):
        assert "tasks" in SERVICES[name]["networks"], name
    for name in [*AIRFLOW, "preflight"]:
        for volume in SERVICES[name].get("volumes", []):
            if volume.startswith("./"):
                assert volume.endswith(":ro"), (name, volume)
    scheduler = _environment(SERVICES["airflow-scheduler"])
    assert scheduler["AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK"] == "true"
    for name in AIRFLOW:  # one [api] secret_key: task logs readable through the api-server
        assert _environment(SERVICES[name])["AIRFLOW__API__SECRET_KEY"].startswith(
            "${AIRFLOW_API_SECRET_KEY:?")


def test_images_are_pinned_and_built_with_airflows_constraints():
    for name, service in SERVICES.items():
        image = service["image"]
        if image == "airflow-kedro-mlflow:local":
            continue
        tag = image.rsplit(":", 1)[1]  # a release (PostgreSQL's minor is its patch level)
        pattern = r"\d+\.\d+-" if image.startswith("postgres:") else r"\d+\.\d+\.\d+|RELEASE\.\d{4}"
        assert re.match(pattern, tag), (name, image)
    dockerfile = (REPO / "docker" / "Dockerfile").read_text()
    assert re.search(r"^ARG AIRFLOW_VERSION=\d+\.\d+\.\d+$", dockerfile, re.M)
    assert "--constraint /tmp/airflow-constraints.txt" in dockerfile
    assert "constraints-${AIRFLOW_VERSION}/constraints-${PYTHON_VERSION}.txt" in dockerfile



def test_build_context_is_only_what_the_image_copies():
    """Without .dockerignore the context is the whole checkout (a .venv of gigabytes, data,
    runs), sent to the engine again for every service that builds the image."""
    ignore = [line for line in (REPO / ".dockerignore").read_text().splitlines()
              if line and not line.startswith("#")]
    assert ignore[0] == "*"
    allowed = {line[1:] for line in ignore if line.startswith("!")}
    copied = set()
    for line in (REPO / "docker" / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            copied.update([part for part in line.split()[1:] if not part.startswith("--")][:-1])
    assert copied == allowed

def test_services_wait_for_what_they_need_and_report_health():
    for name in ("postgres", "redis", "minio", "mlflow", "airflow-apiserver", "airflow-scheduler",
                 "airflow-dag-processor", "airflow-triggerer", "airflow-worker"):
        assert "test" in SERVICES[name]["healthcheck"], name
    for name in ("postgres", "redis", "minio"):
        assert SERVICES[name]["depends_on"]["preflight"]["condition"] == (
            "service_completed_successfully")
    for name in AIRFLOW[1:]:
        depends = SERVICES[name]["depends_on"]
        assert depends["postgres"]["condition"] == "service_healthy"
        assert depends["redis"]["condition"] == "service_healthy"
        assert depends["mlflow"]["condition"] == "service_healthy"
        assert depends["minio-init"]["condition"] == "service_completed_successfully"
        assert depends["airflow-init"]["condition"] == "service_completed_successfully"
        assert depends["mlflow-init"]["condition"] == "service_completed_successfully"
    assert SERVICES["mlflow"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "mc mb" in " ".join(SERVICES["minio-init"]["command"])


def test_dags_and_project_are_mounted_side_by_side():
    """Exported DAG files find the project at ../examples/<name> relative to themselves."""
    dag_text = (REPO / "dags" / "wine_classifier_s3.py").read_text()
    relative = re.search(r"path='([^']+)'", dag_text).group(1)
    for name in AIRFLOW:
        volumes = [v.split(":") for v in SERVICES[name]["volumes"] if v.startswith("./")]
        container_to_host = {container: host for host, container, *_ in volumes}
        dags_folder = _environment(SERVICES[name])["AIRFLOW__CORE__DAGS_FOLDER"]
        assert container_to_host[dags_folder] == "./dags"
        project = PurePosixPath(os.path.normpath(f"{dags_folder}/{relative}"))
        mount = next(c for c in container_to_host if project.is_relative_to(c))
        host_project = REPO / container_to_host[mount] / project.relative_to(mount)
        assert (host_project / "pyproject.toml").is_file(), (name, project)


def test_no_secret_is_written_inline_and_every_reference_is_required_and_documented():
    text = (REPO / "docker-compose.yaml").read_text()
    references = REFERENCE.findall(text)
    assert {name for name, _, _ in references} <= set(PLACEHOLDERS)
    for name, required, default in references:
        assert required or default, f"${{{name}}} is required (:?) or has a default (:-)"
        assert not (default and SECRET_NAME.search(name)), f"the secret {name} has a default"
    for name, service in SERVICES.items():
        for key, value in _environment(service).items():
            if SECRET_NAME.search(key):
                assert REFERENCE.fullmatch(str(value)), f"{name}.{key} is written inline"
            for secret in ("change-me", "minioadmin", "password"):
                assert secret not in str(value), f"{name}.{key}"
    assert ".env" in (REPO / ".gitignore").read_text().split()
    assert (REPO / "docker" / "Dockerfile").is_file()
    checked = SERVICES["preflight"]["command"]
    optional = {name for name, _, default in references if default}
    secrets = {name for name in PLACEHOLDERS if name != "POSTGRES_USER"} - optional
    assert secrets <= set(checked)


def _preflight(values: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(REPO / "docker" / "preflight.sh"),
                           *SERVICES["preflight"]["command"]],
                          env={"PATH": os.environ["PATH"], **values},
                          capture_output=True, text=True)


GOOD = {name: f"{name.lower()}-0123456789abcdef" for name in PLACEHOLDERS}


def test_preflight_passes_real_values():
    done = _preflight(GOOD)
    assert done.returncode == 0, done.stderr
    assert "settings ok" in done.stdout


@pytest.mark.parametrize("values, message", [
    (PLACEHOLDERS, "POSTGRES_PASSWORD is still the placeholder of .env.example"),
    ({**GOOD, "REDIS_PASSWORD": "change-me"}, "REDIS_PASSWORD is still the placeholder"),
    ({k: v for k, v in GOOD.items() if k != "AIRFLOW_FERNET_KEY"}, "AIRFLOW_FERNET_KEY is not set"),
    ({**GOOD, "AIRFLOW_JWT_SECRET": "short"}, "AIRFLOW_JWT_SECRET is shorter than 16"),
    ({**GOOD, "S3_APP_ACCESS_KEY": GOOD["S3_ROOT_USER"]}, "must not be MinIO's root user"),
    ({**GOOD, "MLFLOW_WORKERS_USER": GOOD["MLFLOW_ADMIN_USER"]}, "must not be MLflow's admin"),
    ({**GOOD, "MLFLOW_DB_PASSWORD": "short"}, "MLFLOW_DB_PASSWORD is shorter than 16"),
])
def test_preflight_refuses_placeholders_and_names_the_setting(values, message):
    done = _preflight(values)
    assert done.returncode == 1
    assert message in done.stderr
    for value in values.values():  # names the setting, never prints a value
        if value not in ("airflow", "admin:admin") and len(value) > 8:
            assert value not in done.stdout + done.stderr


def test_workers_preload_the_mounted_project_as_the_integration_deployment_does():
    env = _environment(SERVICES["airflow-worker"])
    assert env["AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS"] == (
        "airflow_kedro_mlflow.celery_config.CELERY_CONFIG")
    volumes = dict(v.split(":")[1::-1] for v in SERVICES["airflow-worker"]["volumes"]
                   if v.startswith("./"))
    for project in env["AIRFLOW__KEDRO_MLFLOW__PRELOAD_PROJECTS"].split(","):
        mount = next(c for c in volumes if PurePosixPath(project).is_relative_to(c))
        host = REPO / volumes[mount] / PurePosixPath(project).relative_to(mount)
        assert (host / "pyproject.toml").is_file(), project
