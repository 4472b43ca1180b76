"""docker-compose.yaml cannot run here (no Docker engine): check the deployment it describes."""

from __future__ import annotations

import os
import re
from pathlib import PurePosixPath

import yaml
from conftest import REPO

COMPOSE = yaml.safe_load((REPO / "docker-compose.yaml").read_text())
SERVICES = COMPOSE["services"]
AIRFLOW = ["airflow-init", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
           "airflow-triggerer", "airflow-worker"]
SECRET_NAME = re.compile(r"PASSWORD|SECRET|KEY|TOKEN|FERNET", re.IGNORECASE)
REFERENCE = re.compile(r"(?<!\$)\$\{(\w+)\}")  # ${VAR} from .env; $${VAR} is the container's


def _environment(service: dict) -> dict[str, str]:
    env = service.get("environment", {})
    return dict(env) if isinstance(env, dict) else dict(item.split("=", 1) for item in env)


def test_stack_has_every_service_of_the_deployment():
    assert set(SERVICES) == {"postgres", "redis", "minio", "minio-init", "mlflow", *AIRFLOW}
    commands = {name: SERVICES[name].get("command") for name in AIRFLOW}
    assert commands["airflow-apiserver"] == "api-server"
    assert commands["airflow-scheduler"] == "scheduler"
    assert commands["airflow-dag-processor"] == "dag-processor"
    assert commands["airflow-triggerer"] == "triggerer"
    assert commands["airflow-worker"] == "celery worker"
    for name in AIRFLOW:
        env = _environment(SERVICES[name])
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
        assert "@postgres/" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
        assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://")
    assert "postgres/mlflow" in " ".join(SERVICES["mlflow"]["command"])


def test_services_wait_for_what_they_need_and_report_health():
    for name in ("postgres", "redis", "minio", "mlflow", "airflow-apiserver", "airflow-scheduler",
                 "airflow-dag-processor", "airflow-triggerer", "airflow-worker"):
        assert "test" in SERVICES[name]["healthcheck"], name
    for name in AIRFLOW[1:]:
        depends = SERVICES[name]["depends_on"]
        assert depends["postgres"]["condition"] == "service_healthy"
        assert depends["redis"]["condition"] == "service_healthy"
        assert depends["mlflow"]["condition"] == "service_healthy"
        assert depends["minio-init"]["condition"] == "service_completed_successfully"
        assert depends["airflow-init"]["condition"] == "service_completed_successfully"
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


def test_no_secret_is_written_inline_and_every_reference_is_documented():
    documented = {line.split("=", 1)[0] for line in (REPO / ".env.example").read_text().splitlines()
                  if line and not line.startswith("#")}
    text = (REPO / "docker-compose.yaml").read_text()
    referenced = set(REFERENCE.findall(text))
    assert referenced <= documented, referenced - documented
    for name, service in SERVICES.items():
        assert service.get("env_file") == ".env" or name == "minio-init" and service["env_file"]
        for key, value in _environment(service).items():
            if SECRET_NAME.search(key):
                assert REFERENCE.fullmatch(str(value)), f"{name}.{key} is written inline"
            for secret in ("change-me", "minioadmin", "password"):
                assert secret not in str(value), f"{name}.{key}"
    assert ".env" in (REPO / ".gitignore").read_text().split()
    assert "docker/Dockerfile" == SERVICES["airflow-scheduler"]["build"]["dockerfile"]
    assert (REPO / "docker" / "Dockerfile").is_file()


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
