"""Import, once per worker, what every task of an exported DAG would otherwise import for itself.

Each task of an exported DAG opens its Kedro project in a fresh task process: it imports Kedro,
this package's task runtime and whatever the project's nodes and datasets import (pandas,
scikit-learn, MLflow...), often 1-2 s per task that ``kedro run`` pays once. Airflow forks each
task process from a long-lived worker process, so what the worker has imported, its tasks have
too. Importing this module in the worker's parent does the imports once:

- LocalExecutor (Airflow 3.3): ``[core] mp_start_method = forkserver`` and
  ``[core] mp_forkserver_preload = airflow_kedro_mlflow.preload``;
- CeleryExecutor: ``[celery] celery_config_options =
  airflow_kedro_mlflow.celery_config.CELERY_CONFIG`` on the workers.

For each Kedro project in ``[kedro_mlflow] preload_projects`` (project roots, comma-separated),
the project's dependencies are imported too: what its pipelines' node modules import, the dataset
classes and MLflow flavors its catalogs name, and MLflow if it has an ``mlflow.yml``. Never the
project's own code: its modules are imported to find their imports, then forgotten, so tasks run
the code on disk and a deploy of new project code needs no worker restart (new versions of
libraries do, as with any import).

Nothing here opens a session, reads credentials or calls a service, and nothing raises: a project
that cannot be preloaded is logged and left to its tasks, which import what they need as usual.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from airflow_kedro_mlflow.runtime.kedro_startup import PRELOADED_ENV

FRAMEWORK_MODULES = (
    "airflow.sdk.execution_time.task_runner",  # what each task process runs
    "kedro.framework.startup",
    "kedro.framework.session",
    "kedro.framework.context",
    "kedro.framework.hooks",
    "kedro.config",
    "kedro.io",
    "kedro.pipeline",
    "kedro.runner",
    "fsspec",
    "airflow_kedro_mlflow.runtime.node_run",
    "airflow_kedro_mlflow.runtime.dag_run",
    "airflow_kedro_mlflow.runtime.tracking",
)

log = logging.getLogger(__name__)


def preload(projects: list[str] | None = None) -> list[str]:
    """Import Kedro, this package's task runtime and the dependencies of ``projects`` (by
    default ``[kedro_mlflow] preload_projects``); returns what was preloaded."""
    from airflow_kedro_mlflow.config.kedro_project import keep_root_logging

    os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "true")
    preloaded, problems = [], []
    with keep_root_logging():  # Kedro configures logging when imported: not the worker's
        try:
            for name in FRAMEWORK_MODULES:
                importlib.import_module(name)
            preloaded.append("kedro")
        except Exception as exc:
            problems.append(f"Kedro not preloaded: {exc}")
        for root in (configured_projects() if projects is None else projects) if preloaded else []:
            try:
                preloaded.append(preload_project(Path(root)))
            except Exception as exc:
                problems.append(f"project {root} not preloaded: {type(exc).__name__}: {exc}")
    for problem in problems:  # reported through the worker's logging, not Kedro's
        log.warning("airflow_kedro_mlflow.preload: %s", problem)
    os.environ[PRELOADED_ENV] = ",".join(preloaded)
    return preloaded


def configured_projects() -> list[str]:
    """The project roots of ``[kedro_mlflow] preload_projects`` (or its environment variable)."""
    value = os.environ.get("AIRFLOW__KEDRO_MLFLOW__PRELOAD_PROJECTS")
    if value is None:
        try:
            from airflow.configuration import conf

            value = conf.get("kedro_mlflow", "preload_projects", fallback="")
        except Exception:
            value = ""
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def preload_project(root: Path) -> str:
    """Import the dependencies of the project at ``root``, then forget the project's own
    modules and configuration; returns its package name."""
    from kedro.framework.project import pipelines

    from airflow_kedro_mlflow.config.kedro_project import bootstrap

    metadata = bootstrap(root.resolve())
    package = metadata.package_name
    try:
        dict(pipelines)  # imports every node module of every registered pipeline
        conf_root = root / "conf"
        for name in sorted(_catalog_imports(root, conf_root)):
            _import_quietly(name)
        if any(conf_root.glob("*/mlflow*")):
            _import_quietly("mlflow")
    finally:
        pipelines.configure(None)  # no reference to the project's functions stays behind
        for name in [m for m in sys.modules if m == package or m.startswith(f"{package}.")]:
            del sys.modules[name]
    return package


def _catalog_imports(project_root: Path, conf_root: Path) -> set[str]:
    """Dataset types and MLflow flavors named by the project's catalogs, in every env."""
    from airflow_kedro_mlflow.config.kedro_project import config_loader

    names: set[str] = set()
    envs: list[str | None] = [p.name for p in conf_root.iterdir() if p.is_dir() and p.name != "base"]
    for env in envs or [None]:
        try:
            catalog = config_loader(project_root, env, None)["catalog"]
        except Exception as exc:  # an env whose catalog needs a variable this process lacks
            log.debug("preload: catalog of env %s not read: %s", env, exc)
            continue
        names |= set(_named_imports(catalog))
    return names


def _named_imports(config: Any) -> Iterator[str]:
    if isinstance(config, dict):
        for key, value in config.items():
            if key == "type" and isinstance(value, str):
                yield f"dataset:{value}"
            elif key == "flavor" and isinstance(value, str) and value.startswith("mlflow."):
                yield f"flavor:{value}"
            else:
                yield from _named_imports(value)
    elif isinstance(config, list):
        for item in config:
            yield from _named_imports(item)


def _import_quietly(name: str) -> None:
    kind, _, target = name.partition(":")
    try:
        if kind == "dataset":
            from kedro.io.core import parse_dataset_definition

            parse_dataset_definition({"type": target})
        elif kind == "flavor":
            from airflow_kedro_mlflow.datasets import import_flavor

            import_flavor(target)
        else:
            importlib.import_module(name)
    except Exception as exc:  # the task that uses it reports it properly
        log.debug("preload: %s not imported: %s", name, exc)


preload()
