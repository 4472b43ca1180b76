"""Everything a task of an exported DAG opens once: project, credentials, settings, store, MLflow.

Order matters: credentials are read (and masked) before any other step can log, and nothing here
leaves the task process.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from airflow_kedro_mlflow.config import PipelineSettings, load_pipeline_settings
from airflow_kedro_mlflow.kedro_project import bootstrap, conf_source_path, config_loader
from airflow_kedro_mlflow.project_ref import KedroProject
from airflow_kedro_mlflow.run_identity import RunIdentity
from airflow_kedro_mlflow.runtime.credentials import Credentials
from airflow_kedro_mlflow.runtime.intermediate import IntermediateStore


@dataclass
class TaskRuntime:
    project: KedroProject
    run: RunIdentity
    path: Path
    metadata: Any
    credentials: Credentials
    settings: PipelineSettings

    @classmethod
    def open(cls, project: KedroProject, run: RunIdentity) -> TaskRuntime:
        path = project.locate()
        metadata = bootstrap(path)
        credentials = Credentials.load(project, path)
        loader = config_loader(path, project.env, project.conf_source)
        settings = load_pipeline_settings(
            loader, conf_source_path(path, project.conf_source), project.env, project.pipeline
        )
        return cls(project, run, path, metadata, credentials, settings)

    @cached_property
    def store(self) -> IntermediateStore:
        """The DAG run's intermediate store, with ``intermediate_store_credentials`` if named."""
        return IntermediateStore.for_settings(self.settings, self.path, self.run, self.credentials)

    @cached_property
    def tracker(self) -> Any:
        """MLflow configured for this project, or ``None`` when tracking is off."""
        from airflow_kedro_mlflow.runtime.tracking import Tracker

        return Tracker.open(self.project, self.path, self.metadata.package_name, self.credentials)
