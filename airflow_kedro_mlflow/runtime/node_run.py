"""Run exactly one Kedro node of a DAG run inside an Airflow task.

The node runs through ``KedroSession.run`` so the project's hooks and catalog behave as in
``kedro run``. Two things differ, both set up here: the session's save version is the DAG run's
(so all tasks write, and downstream tasks read, one version), and datasets that cross a task
boundary without a catalog entry are routed through the run's intermediate store. Any try may
save again what an earlier try of the same DAG run saved (``owned_outputs``), and a try that
Airflow gave up on stops before it writes anything more (``try_guard``), and a save it is already
inside ends before the retry's saves start (``save_lease``).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kedro.framework.hooks import hook_impl

from airflow_kedro_mlflow.compat.kedro import register_hooks
from airflow_kedro_mlflow.config.kedro_project import create_session
from airflow_kedro_mlflow.config.project_ref import KedroProject
from airflow_kedro_mlflow.core.run_identity import RunIdentity
from airflow_kedro_mlflow.runtime.intermediate import IntermediateStore
from airflow_kedro_mlflow.runtime.lineage import NodeLineage, node_lineage
from airflow_kedro_mlflow.runtime.model_uri_handoff import ModelUriHandoffHooks
from airflow_kedro_mlflow.runtime.owned_outputs import OwnedOutputsHooks
from airflow_kedro_mlflow.runtime.save_lease import SaveLease
from airflow_kedro_mlflow.runtime.task_runtime import TaskRuntime
from airflow_kedro_mlflow.runtime.try_guard import TryGuard

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NodeTask:
    """What one node task runs, as rendered into the DAG file: one node, or a group of nodes."""

    node_names: tuple[str, ...]
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
    on_lineage: Callable[[NodeLineage], None] | None = None,
) -> None:
    """Run ``task``'s node; ``runtime_params`` (the DAG run's conf) override project parameters.

    With MLflow tracking on, the node runs inside a child run of ``parent_run_id``;
    ``on_tracked(run_id, url)`` is called as soon as that child exists, so the task can link to it
    even if the node then fails. ``experiment_id`` is the parent's (saves fetching it).
    ``on_lineage`` gets the catalog datasets the nodes read and write, before they run (given
    when Airflow's OpenLineage provider is there to report them).
    """
    guard = TryGuard(f"task {run.task_id} try {run.try_number}")
    runtime = TaskRuntime.open(project, run, runtime_params)
    project_path, store, tracker = runtime.path, runtime.store, runtime.tracker
    session = create_session(
        project_path,
        env=project.env,
        conf_source=project.conf_source,
        save_version=run.save_version,
        runtime_params=runtime_params or None,
        loader=runtime.loader,
    )
    log.info(
        "Running Kedro node%s '%s' of pipeline '%s' (project %s, env %s, save version %s)",
        "s" if len(task.node_names) > 1 else "",
        "', '".join(task.node_names),
        project.pipeline,
        project_path,
        runtime.env_description,
        run.save_version,
    )
    if on_lineage is not None:
        from kedro.framework.project import pipelines

        if project.pipeline in pipelines:
            on_lineage(node_lineage(pipelines[project.pipeline], task.node_names,
                                    runtime.loader["catalog"], runtime.metadata.package_name))
    crossing = task.intermediate_inputs + task.intermediate_outputs
    if crossing:
        log.info("Intermediate data for %s under %s", ", ".join(crossing), store.url)
        register_hooks(session, IntermediateDataHooks(store, crossing))
    register_hooks(session, ModelUriHandoffHooks(store))
    lease = SaveLease(store, run.task_id, run.try_number, guard)
    register_hooks(session, OwnedOutputsHooks(guard, lease))
    with contextlib.ExitStack() as stack:
        stack.callback(lease.close)
        if tracker is not None and parent_run_id:
            params = node_params(runtime, task.node_names)
            if len(task.node_names) == 1:
                (name,) = task.node_names
                child = stack.enter_context(
                    tracker.node_run(parent_run_id, run, name, params[name], guard, experiment_id)
                )
                if on_tracked is not None:
                    on_tracked(child.info.run_id, tracker.run_url(child))
            else:  # a grouped task: a child run per node, opened as Kedro starts the node
                register_hooks(session, stack.enter_context(
                    tracker.node_runs(parent_run_id, run, params, guard, experiment_id)))
                if on_tracked is not None and experiment_id:  # the task links to the parent
                    on_tracked(parent_run_id, tracker.settings.run_url(experiment_id, parent_run_id))
        elif tracker is not None:
            log.warning("MLflow is configured but the start task opened no parent run: not tracking")
        with session:
            session.run(
                pipeline_names=[project.pipeline],
                node_names=list(task.node_names),
                load_versions={name: run.save_version for name in task.versioned_inputs} or None,
            )
        guard.check(before="reporting the node's success")


def node_params(runtime: TaskRuntime, node_names: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """Per node: the values of its ``params:`` inputs (and ``parameters``), by parameter name.

    The parameters are read once for all the nodes of the task, and only if a node has any."""
    from kedro.framework.project import pipelines

    try:
        pipeline_nodes = {n.name: n for n in pipelines[runtime.project.pipeline].nodes}
    except KeyError:
        pipeline_nodes = {}  # session.run reports the unknown pipeline with Kedro's own message
    wanted = [pipeline_nodes[name] for name in node_names if name in pipeline_nodes]
    if not any(i == "parameters" or i.startswith("params:") for n in wanted for i in n.inputs):
        return {name: {} for name in node_names}
    parameters = runtime.parameters
    result: dict[str, dict[str, Any]] = {name: {} for name in node_names}
    for node in wanted:
        values = result[node.name]
        for name in node.inputs:
            if name == "parameters":
                values.update(parameters)
            elif name.startswith("params:"):
                key = name.removeprefix("params:")
                value: Any = parameters
                for part in key.split("."):
                    value = value.get(part) if isinstance(value, dict) else None
                values[key] = value
    return result
