"""Run exactly one Kedro node of a DAG run inside an Airflow task.

The node runs through ``KedroSession.run`` so the project's hooks and catalog behave as in
``kedro run``. Two things differ, both set up here: the session's save version is the DAG run's
(so all tasks write, and downstream tasks read, one version), and datasets that cross a task
boundary without a catalog entry are routed through the run's intermediate store.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl

from airflow_kedro_mlflow.config import PipelineSettings, load_pipeline_settings
from airflow_kedro_mlflow.kedro_project import bootstrap, conf_source_path, create_session
from airflow_kedro_mlflow.project_ref import KedroProject
from airflow_kedro_mlflow.run_identity import RunIdentity
from airflow_kedro_mlflow.runtime.intermediate import IntermediateStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NodeTask:
    """What one node task runs, as rendered into the DAG file."""

    node_name: str
    intermediate_inputs: tuple[str, ...] = ()
    intermediate_outputs: tuple[str, ...] = ()
    versioned_inputs: tuple[str, ...] = ()


class IntermediateDataHooks:
    """Replaces the boundary-crossing in-memory datasets of one node by intermediate-store ones."""

    def __init__(self, store: IntermediateStore, dataset_names: tuple[str, ...]):
        self._store = store
        self._names = dataset_names

    @hook_impl
    def after_catalog_created(self, catalog: Any) -> None:
        for name in self._names:
            catalog[name] = self._store.dataset(name)


def project_settings(project: KedroProject, project_path: Path) -> PipelineSettings:
    """The pipeline's ``airflow.yml`` settings, read with the project's config loader."""
    from kedro.framework.project import settings

    loader = settings.CONFIG_LOADER_CLASS(
        conf_source=str(conf_source_path(project_path, project.conf_source)),
        env=project.env,
        **settings.CONFIG_LOADER_ARGS,
    )
    return load_pipeline_settings(
        loader, conf_source_path(project_path, project.conf_source), project.env, project.pipeline
    )


def open_store(project: KedroProject, project_path: Path, run: RunIdentity) -> IntermediateStore:
    settings = project_settings(project, project_path)
    return IntermediateStore.for_project(settings.intermediate_store, project_path, run)


def run_node(
    project: KedroProject,
    task: NodeTask,
    run: RunIdentity,
    runtime_params: dict[str, Any] | None = None,
) -> None:
    """Run ``task``'s node; ``runtime_params`` (the DAG run's conf) override project parameters."""
    project_path = project.locate()
    bootstrap(project_path)
    store = open_store(project, project_path, run)
    session = create_session(
        project_path,
        env=project.env,
        conf_source=project.conf_source,
        save_version=run.save_version,
        runtime_params=runtime_params or None,
    )
    log.info(
        "Running Kedro node '%s' of pipeline '%s' (project %s, env %s, save version %s)",
        task.node_name,
        project.pipeline,
        project_path,
        project.env or "default",
        run.save_version,
    )
    crossing = task.intermediate_inputs + task.intermediate_outputs
    if crossing:
        log.info("Intermediate data for %s under %s", ", ".join(crossing), store.url)
        session._hook_manager.register(IntermediateDataHooks(store, crossing))
    with session:
        session.run(
            pipeline_names=[project.pipeline],
            node_names=[task.node_name],
            load_versions={name: run.save_version for name in task.versioned_inputs} or None,
        )
