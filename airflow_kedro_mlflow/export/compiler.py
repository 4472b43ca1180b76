"""Compile a Kedro pipeline into a ``Manifest``.

This is the only place that asks Kedro what a pipeline looks like; everything downstream (the
renderer, the DAG file, the operators' wiring) works from the manifest alone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow_kedro_mlflow.config import pipeline as airflow_config
from airflow_kedro_mlflow.config.catalog import catalog_resolver, dataset_spec
from airflow_kedro_mlflow.config.kedro_project import (
    bootstrap,
    conf_source_path,
    create_session,
    read_config,
)
from airflow_kedro_mlflow.core.errors import ExportError, PipelineNotStandalone
from airflow_kedro_mlflow.core.ids import MAX_ID_LENGTH, dag_id_for, sanitize_id_part, short_hash
from airflow_kedro_mlflow.core.manifest import DatasetSpec, Manifest, NodeSpec, TaskSpec


@dataclass(frozen=True)
class CompiledPipeline:
    """A manifest together with the settings the DAG is rendered with."""

    manifest: Manifest
    settings: airflow_config.PipelineSettings


def compile_project(
    project_path: Path,
    pipeline_names: list[str] | None = None,
    env: str | None = None,
    conf_source: str | None = None,
    group_by: str | None = None,
    tags: list[str] | None = None,
    overrides: dict[str, Any] | None = None,
    skipped: list[tuple[str, str]] | None = None,
) -> list[CompiledPipeline]:
    """Compile the named pipelines (default: every registered one) of a Kedro project.

    With ``skipped`` (a list), a pipeline that cannot run on its own (``PipelineNotStandalone``)
    is left out and added there with the reason, instead of failing the whole export.

    ``group_by`` (``memory``, ``namespace``) overrides airflow.yml's ``group_by``; ``tags``
    keeps the nodes with one of them (``kedro run --tags``); ``overrides`` are airflow.yml keys
    over the pipeline's block (``--params``)."""
    project_path = Path(project_path).resolve()
    metadata = bootstrap(project_path)
    from kedro.framework.project import pipelines

    session = create_session(project_path, env=env, conf_source=conf_source, with_hooks=False)
    context = session.load_context()
    # The catalog's *configuration* is all the manifest needs; instantiating the catalog would
    # resolve credentials, and exporting must not need (or see) any secret.
    catalog = catalog_resolver(context.config_loader["catalog"])
    registered = dict(pipelines)
    names = pipeline_names or sorted(registered)
    unknown = [name for name in names if name not in registered]
    if unknown:
        raise ExportError(
            f"unknown pipeline '{unknown[0]}' in project '{metadata.package_name}' "
            f"(registered: {', '.join(sorted(registered)) or 'none'})"
        )
    conf_root = conf_source_path(project_path, conf_source)
    # the config loader's parameters, not context.params: that validates every node's typed
    # parameters, a cost that grows with the pipeline and that the tasks pay anyway
    parameters = read_config(context.config_loader, "parameters", ["parameters*"], "parameters") or {}
    compiled = []
    for name in names:
        settings = airflow_config.load_pipeline_settings(
            context.config_loader, conf_root, env, name, overrides, sorted(registered)
        )
        pipeline = registered[name]
        if tags:
            pipeline = pipeline.only_nodes_with_tags(*tags)
            if not pipeline.nodes:
                raise ExportError(
                    f"no node of pipeline '{name}' has tag {' or '.join(map(repr, tags))}"
                )
        try:
            manifest = compile_pipeline(
                pipeline,
                catalog=catalog,
                package_name=metadata.package_name,
                project_name=metadata.project_name,
                pipeline_name=name,
                env=env,
                dag_id=airflow_config.configured_dag_id(settings, metadata.package_name, name),
                group_by=group_by or settings.group_by,
                parameters=parameters,
            )
        except PipelineNotStandalone as exc:
            if skipped is None:
                raise
            skipped.append((name, str(exc)))
            continue
        compiled.append(CompiledPipeline(manifest, settings))
    if not compiled and skipped:
        raise ExportError(f"no pipeline of project '{metadata.package_name}' can run on its own: "
                          f"{skipped[0][1]}")
    return compiled


def compile_pipeline(
    pipeline: Any,
    *,
    catalog: Any,
    package_name: str,
    project_name: str,
    pipeline_name: str,
    env: str | None,
    dag_id: str | None = None,
    group_by: str | None = None,
    parameters: dict[str, Any] | None = None,
) -> Manifest:
    """Describe one Kedro ``Pipeline`` with the datasets its ``catalog`` (a resolver) declares
    and the ``parameters`` (the project's, of the exported env) its nodes read."""
    if not pipeline.nodes:
        raise ExportError(f"pipeline '{pipeline_name}' of '{package_name}' has no nodes")
    dependencies = pipeline.node_dependencies
    nodes = []
    for node in pipeline.nodes:  # Kedro returns them in topological order
        group, task_id = _task_id(node.name, node.namespace)
        nodes.append(
            NodeSpec(
                name=node.name,
                task_id=task_id,
                group=group,
                func=_qualified_name(node.func),
                inputs=tuple(node.inputs),
                outputs=tuple(node.outputs),
                upstream=tuple(sorted(parent.name for parent in dependencies[node])),
                tags=tuple(sorted(node.tags)),
                namespace=node.namespace,
            )
        )
    _check_unique_task_ids(nodes, pipeline_name)
    datasets = {name: dataset_spec(name, catalog) for name in sorted(pipeline.datasets())}
    _check_inputs_exist(nodes, datasets, pipeline_name)
    tasks = grouped_tasks(nodes, datasets, group_by, pipeline_name) if group_by else ()
    return Manifest(
        package_name=package_name,
        project_name=project_name,
        pipeline_name=pipeline_name,
        dag_id=dag_id or dag_id_for(package_name, pipeline_name),
        env=env,
        nodes=tuple(nodes),
        datasets=datasets,
        grouped_tasks=tasks,
        parameters=pipeline_parameters(pipeline, parameters or {}),
    )


def pipeline_parameters(pipeline: Any, parameters: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    """The top-level parameters the pipeline's nodes read (``params:<name>...``, or all of them
    for a node that reads ``parameters``), with their values as JSON data: what a DAG run's
    conf may override, so what the trigger form offers."""
    inputs = {i for node in pipeline.nodes for i in node.inputs}
    if "parameters" in inputs:
        wanted = set(parameters)
    else:
        wanted = {i.removeprefix("params:").split(".")[0] for i in inputs if i.startswith("params:")}
    return tuple(
        (name, json.loads(json.dumps(parameters[name], default=str)))
        for name in sorted(wanted)
        if name in parameters
    )


def grouped_tasks(
    nodes: list[NodeSpec], datasets: dict[str, DatasetSpec], group_by: str, pipeline_name: str
) -> tuple[TaskSpec, ...]:
    """Nodes merged into tasks, kedro-airflow's way: ``memory`` joins the producer and the
    consumers of every in-memory dataset (not in the catalog, or a MemoryDataset); ``namespace``
    joins the nodes of each top-level namespace. Tasks keep Kedro's topological order."""
    names = [node.name for node in nodes]
    parent = {name: name for name in names}

    def root(name: str) -> str:
        while parent[name] != name:
            parent[name] = parent[parent[name]]
            name = parent[name]
        return name

    def join(a: str, b: str) -> None:
        parent[root(b)] = root(a)

    if group_by == "memory":
        producer = {out: node.name for node in nodes for out in node.outputs}
        for node in nodes:
            for name in node.inputs:
                spec = datasets.get(name)
                if name in producer and (spec is None or spec.kind == "memory"):
                    join(producer[name], node.name)
    else:
        first_of: dict[str, str] = {}
        for node in nodes:
            if node.namespace:
                join(first_of.setdefault(node.namespace.split(".")[0], node.name), node.name)
    members: dict[str, list[NodeSpec]] = {}
    for node in nodes:
        members.setdefault(root(node.name), []).append(node)
    task_of: dict[str, str] = {}
    specs: list[tuple[str, tuple[str, ...], tuple[NodeSpec, ...]]] = []
    for group_nodes in members.values():
        group, task_id = _group_task_id(group_nodes, group_by)
        full = ".".join((*group, task_id))
        specs.append((task_id, group, tuple(group_nodes)))
        for node in group_nodes:
            task_of[node.name] = full
    by_name = {node.name: node for node in nodes}
    tasks = []
    for task_id, group, task_nodes in specs:
        full = ".".join((*group, task_id))
        upstream = sorted({task_of[p] for n in task_nodes for p in by_name[n.name].upstream} - {full})
        tasks.append(TaskSpec(task_id, group, task_nodes, tuple(upstream)))
    _check_acyclic(tasks, pipeline_name, group_by)
    _check_unique_task_ids(tasks, pipeline_name)
    return tuple(tasks)


def _group_task_id(nodes: list[NodeSpec], group_by: str) -> tuple[tuple[str, ...], str]:
    if len(nodes) == 1:
        return nodes[0].group, nodes[0].task_id
    if group_by == "namespace" and nodes[0].namespace:
        return (), sanitize_id_part(nodes[0].namespace.split(".")[0])
    task_id = "_".join(node.full_task_id.replace(".", "_") for node in nodes)
    if len(task_id) > MAX_ID_LENGTH:
        task_id = f"{task_id[: MAX_ID_LENGTH - 9]}_{short_hash(task_id)}"
    return (), task_id


def _check_inputs_exist(
    nodes: list[NodeSpec], datasets: dict[str, DatasetSpec], pipeline_name: str
) -> None:
    """An in-memory input that no node of the pipeline produces would fail its task at run time
    (in ``kedro run`` too): it is an export error, naming the node and the dataset."""
    produced = {output for node in nodes for output in node.outputs}
    for node in nodes:
        for name in node.inputs:
            spec = datasets.get(name)
            if spec is not None and spec.kind == "memory" and name not in produced:
                raise PipelineNotStandalone(
                    f"node '{node.name}' of pipeline '{pipeline_name}' reads '{name}', which is "
                    "not in the catalog (so it lives in memory) and no node of the exported "
                    "pipeline produces: add it to the catalog, or export the nodes that produce "
                    "it (--tags)"
                )


def _check_acyclic(tasks: list[TaskSpec], pipeline_name: str, group_by: str) -> None:
    """Grouping can close a cycle (A -> persisted -> B -> memory -> A's group): name it.

    An iterative depth-first search, so a long chain of tasks cannot exhaust Python's stack."""
    upstream = {task.full_task_id: sorted(task.upstream) for task in tasks}
    done: set[str] = set()
    for start in upstream:
        if start in done:
            continue
        path: list[str] = [start]
        on_path: set[str] = {start}
        pending: list[list[str]] = [list(upstream[start])]
        while path:
            if not pending[-1]:
                finished = path.pop()
                on_path.discard(finished)
                done.add(finished)
                pending.pop()
                continue
            parent = pending[-1].pop()
            if parent in done:
                continue
            if parent in on_path:
                cycle = path[path.index(parent):] + [parent]
                raise ExportError(
                    f"--group-by {group_by} makes tasks of pipeline '{pipeline_name}' depend on "
                    f"each other in a cycle: {' <- '.join(cycle)}; export without grouping, or "
                    "keep in memory the data that leaves and re-enters the group"
                )
            path.append(parent)
            on_path.add(parent)
            pending.append(list(upstream[parent]))


def _task_id(node_name: str, namespace: str | None) -> tuple[tuple[str, ...], str]:
    """A node's TaskGroup path (from its namespace) and its id within that group."""
    group: tuple[str, ...] = ()
    local = node_name
    if namespace and node_name.startswith(namespace + "."):
        group = tuple(sanitize_id_part(part) for part in namespace.split("."))
        local = node_name[len(namespace) + 1 :]
    task_id = sanitize_id_part(local)
    budget = MAX_ID_LENGTH - sum(len(g) + 1 for g in group)
    if len(task_id) > budget:  # unnamed nodes are named after their whole signature
        task_id = f"{task_id[: budget - 9]}_{short_hash(node_name)}"
    return group, task_id


def _check_unique_task_ids(nodes: list[NodeSpec] | list[TaskSpec], pipeline_name: str) -> None:
    seen: dict[str, str] = {}
    for node in nodes:
        name = node.name if isinstance(node, NodeSpec) else ", ".join(node.node_names)
        other = seen.setdefault(node.full_task_id, name)
        if other != name:
            raise ExportError(
                f"nodes '{other}' and '{name}' of pipeline '{pipeline_name}' both map to "
                f"Airflow task id '{node.full_task_id}': rename one of them"
            )


def _qualified_name(func: Any) -> str:
    inner = getattr(func, "func", func)  # functools.partial
    module = getattr(inner, "__module__", None) or "?"
    name = getattr(inner, "__qualname__", None) or type(inner).__name__
    return f"{module}.{name}"
