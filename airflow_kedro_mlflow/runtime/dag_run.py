"""The start and end of a DAG run: what happens once per run rather than once per node."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from airflow_kedro_mlflow.kedro_project import bootstrap
from airflow_kedro_mlflow.project_ref import KedroProject
from airflow_kedro_mlflow.run_identity import RunIdentity
from airflow_kedro_mlflow.runtime.node_run import open_store

log = logging.getLogger(__name__)

OK_STATES = {"success", "skipped"}


def start_run(project: KedroProject, run: RunIdentity, runtime_params: dict[str, Any]) -> None:
    """Fail fast, before any node runs, if the project or its config cannot be used here."""
    project_path = project.locate()
    bootstrap(project_path)
    store = open_store(project, project_path, run)
    if runtime_params:
        log.info("Kedro runtime parameters from the DAG run's conf: %s", sorted(runtime_params))
    log.info(
        "DAG run %s of Kedro project %s: save version %s, intermediate store %s",
        run.run_id,
        project_path,
        run.save_version,
        store.url,
    )


def finish_run(project: KedroProject, run: RunIdentity, node_states: Mapping[str, str | None]) -> list[str]:
    """Clean up after the run; returns the node tasks that did not succeed.

    The intermediate data is removed only when every node task succeeded: after a failure it is
    what lets a cleared task rerun without rerunning its upstream tasks.
    """
    failed = sorted(task for task, state in node_states.items() if str(state) not in OK_STATES)
    project_path = project.locate()
    bootstrap(project_path)
    store = open_store(project, project_path, run)
    if failed:
        log.warning(
            "Node tasks not successful: %s; keeping intermediate data at %s",
            ", ".join(failed),
            store.url,
        )
    else:
        store.remove()
        log.info("All node tasks succeeded; removed intermediate data at %s", store.url)
    return failed
