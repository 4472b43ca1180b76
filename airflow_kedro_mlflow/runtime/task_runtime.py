"""Everything a task of an exported DAG opens once: project, config, credentials, store, MLflow.

One config loader serves the whole task (credentials, ``airflow.yml``, ``mlflow.yml`` and the
parameters, with the DAG run's conf as runtime parameters), Kedro's session included.
Order matters: credentials are read (and masked) before any other step can log, and nothing here
leaves the task process.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from airflow_kedro_mlflow.compat.kedro import quiet_resolver_deprecation
from airflow_kedro_mlflow.config import connections
from airflow_kedro_mlflow.config.airflow_yml import PipelineSettings
from airflow_kedro_mlflow.config.credentials import Credentials
from airflow_kedro_mlflow.config.kedro_project import bootstrap, conf_source_path, config_loader
from airflow_kedro_mlflow.config.pipeline import load_pipeline_settings
from airflow_kedro_mlflow.config.project_ref import KedroProject
from airflow_kedro_mlflow.core.run_identity import RunIdentity
from airflow_kedro_mlflow.runtime.intermediate import IntermediateStore
from airflow_kedro_mlflow.runtime.kedro_startup import PRELOADED_ENV, infer_copy_mode_without_imports

log = logging.getLogger(__name__)


@dataclass
class TaskRuntime:
    project: KedroProject
    run: RunIdentity
    path: Path
    metadata: Any
    loader: Any
    """The project's config loader, with the DAG run's conf as runtime parameters."""
    conf_root: Path
    credentials: Credentials
    settings: PipelineSettings

    @classmethod
    def open(
        cls, project: KedroProject, run: RunIdentity, runtime_params: dict[str, Any] | None = None
    ) -> TaskRuntime:
        path = project.locate()
        if os.environ.get(PRELOADED_ENV):
            log.info("Worker preloaded by airflow_kedro_mlflow.preload: %s", os.environ[PRELOADED_ENV])
        quiet_resolver_deprecation()
        metadata = bootstrap(path)
        infer_copy_mode_without_imports()
        connections.register()  # ${airflow_conn:...} in credentials.yml and mlflow.yml
        loader = config_loader(path, project.env, project.conf_source, runtime_params or None)
        conf_root = conf_source_path(path, project.conf_source)
        credentials = Credentials.from_loader(loader, conf_root, project.env)
        settings = load_pipeline_settings(loader, conf_root, project.env, project.pipeline)
        return cls(project, run, path, metadata, loader, conf_root, credentials, settings)

    @property
    def env(self) -> str:
        """The env the task reads: the DAG's, else Kedro's default run env (``KEDRO_ENV``, or
        the loader's ``local``)."""
        return (self.project.env or getattr(self.loader, "env", None)
                or getattr(self.loader, "default_run_env", None) or "local")

    @property
    def env_description(self) -> str:
        """``env`` as messages name it, said to be Kedro's default when the DAG names none."""
        return self.project.env or f"{self.env} (Kedro's default)"

    @cached_property
    def parameters(self) -> dict[str, Any]:
        """The project's parameters, runtime parameters merged in (as the session sees them)."""
        return dict(self.loader["parameters"])

    @cached_property
    def store(self) -> IntermediateStore:
        """The DAG run's intermediate store, with ``intermediate_store_credentials`` if named."""
        return IntermediateStore.for_settings(self.settings, self.path, self.run, self.credentials)

    @cached_property
    def tracker(self) -> Any:
        """MLflow configured for this project, or ``None`` when tracking is off."""
        from airflow_kedro_mlflow.runtime.tracking import Tracker

        return Tracker.open(
            self.project, self.path, self.metadata.package_name, self.credentials, self.loader
        )
