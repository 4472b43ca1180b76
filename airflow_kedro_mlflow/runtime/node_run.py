"""Run exactly one Kedro node of a DAG run inside an Airflow task.

The node runs through ``KedroSession.run`` so the project's hooks and catalog behave as in
``kedro run``. Two things differ, both set up here: the session's save version is the DAG run's
(so all tasks write, and downstream tasks read, one version), and datasets that cross a task
boundary without a catalog entry are routed through the run's intermediate store. Any try may
save again what an earlier try of the same DAG run saved (``owned_outputs``), and a try that
Airflow gave up on stops before it writes anything more (``try_guard``).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl

from airflow_kedro_mlflow.kedro_project import config_loader, create_session
from airflow_kedro_mlflow.project_ref import KedroProject
from airflow_kedro_mlflow.run_identity import RunIdentity
from airflow_kedro_mlflow.runtime.intermediate import IntermediateStore
from airflow_kedro_mlflow.runtime.model_uri_handoff import ModelUriHandoffHooks
from airflow_kedro_mlflow.runtime.owned_outputs import OwnedOutputsHooks
from airflow_kedro_mlflow.runtime.task_runtime import TaskRuntime
from airflow_kedro_mlflow.runtime.try_guard import TryGuard

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


def run_node(
    project: KedroProject,
    task: NodeTask,
    run: RunIdentity,
    runtime_params: dict[str, Any] | None = None,
    parent_run_id: str | None = None,
    experiment_id: str | None = None,
    on_tracked: Callable[[str, str | None], None] | None = None,
) -> None:
    """Run ``task``'s node; ``runtime_params`` (the DAG run's conf) override project parameters.

    With MLflow tracking on, the node runs inside a child run of ``parent_run_id``;
    ``on_tracked(run_id, url)`` is called as soon as that child exists, so the task can link to it
    even if the node then fails. ``experiment_id`` is the parent's (saves fetching it).
    """
    guard = TryGuard(f"task {run.task_id} try {run.try_number}")
    runtime = TaskRuntime.open(project, run)
    project_path, store, tracker = runtime.path, runtime.store, runtime.tracker
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
    session._hook_manager.register(ModelUriHandoffHooks(store))
    session._hook_manager.register(OwnedOutputsHooks(guard))
    with contextlib.ExitStack() as stack:
        if tracker is not None and parent_run_id:
            params = node_params(project, project_path, task.node_name, runtime_params)
            child = stack.enter_context(
                tracker.node_run(parent_run_id, run, task.node_name, params, guard, experiment_id)
            )
            if on_tracked is not None:
                on_tracked(child.info.run_id, tracker.run_url(child))
        elif tracker is not None:
            log.warning("MLflow is configured but the start task opened no parent run: not tracking")
        with session:
            session.run(
                pipeline_names=[project.pipeline],
                node_names=[task.node_name],
                load_versions={name: run.save_version for name in task.versioned_inputs} or None,
            )
        guard.check(before="reporting the node's success")


def node_params(
    project: KedroProject,
    project_path: Path,
    node_name: str,
    runtime_params: dict[str, Any] | None,
) -> dict[str, Any]:
    """The values of the node's ``params:`` inputs (and ``parameters``), keyed by parameter name."""
    from kedro.framework.project import pipelines

    try:
        node = next(n for n in pipelines[project.pipeline].nodes if n.name == node_name)
    except (KeyError, StopIteration):
        return {}  # session.run reports the unknown pipeline or node with Kedro's own message
    parameters = config_loader(project_path, project.env, project.conf_source, runtime_params)[
        "parameters"
    ]
    values: dict[str, Any] = {}
    for name in node.inputs:
        if name == "parameters":
            values.update(parameters)
        elif name.startswith("params:"):
            key = name.removeprefix("params:")
            value: Any = parameters
            for part in key.split("."):
                value = value.get(part) if isinstance(value, dict) else None
            values[key] = value
    return values
