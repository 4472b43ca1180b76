"""The plain-data description of a Kedro pipeline that a DAG is rendered from.

The manifest is the seam between Kedro (``compiler``, which needs the project importable) and
Airflow (``renderer``, which needs nothing but this data). It holds everything the DAG file must
state at parse time: task ids, groups, edges and, per task, which datasets cross a task boundary.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

DatasetKind = Literal["parameter", "persisted", "memory"]


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset of the pipeline as the catalog of the exported env declares it."""

    name: str
    kind: DatasetKind
    type: str | None = None
    versioned: bool = False
    filepath: str | None = None
    """Where the catalog persists it, as configured (an URL, or a path relative to the project),
    without the credentials a URL may carry (``urls.redact_url``)."""

    def asset_uri(self, package_name: str) -> str | None:
        """The Airflow Asset a persisted dataset is published as: its URL where it has one
        (``s3://...``), else ``kedro://<package>/<dataset>`` (a local path is machine-specific)."""
        if self.kind != "persisted":
            return None
        if self.filepath and "://" in self.filepath and not self.filepath.startswith("file://"):
            return self.filepath
        return f"kedro://{package_name}/{self.name}"


@dataclass(frozen=True)
class NodeSpec:
    """One Kedro node, which becomes one Airflow task."""

    name: str
    task_id: str
    group: tuple[str, ...]
    func: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    upstream: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    namespace: str | None = None

    @cached_property
    def full_task_id(self) -> str:
        """The task id Airflow shows, prefixed by its TaskGroups (asked for per edge: cached)."""
        return ".".join((*self.group, self.task_id))


@dataclass(frozen=True)
class TaskSpec:
    """One Airflow task: one Kedro node, or several grouped ones (``--group-by``) that run in
    one Kedro session, passing in-memory data to each other in memory."""

    task_id: str
    group: tuple[str, ...]
    nodes: tuple[NodeSpec, ...]
    upstream: tuple[str, ...] = ()
    """Full task ids of the tasks this one follows."""

    @cached_property
    def full_task_id(self) -> str:
        return ".".join((*self.group, self.task_id))

    @property
    def node_names(self) -> tuple[str, ...]:
        return tuple(node.name for node in self.nodes)

    @property
    def inputs(self) -> tuple[str, ...]:
        return _unique(name for node in self.nodes for name in node.inputs)

    @property
    def outputs(self) -> tuple[str, ...]:
        return _unique(name for node in self.nodes for name in node.outputs)

    @property
    def tags(self) -> tuple[str, ...]:
        return tuple(sorted({tag for node in self.nodes for tag in node.tags}))


def _unique(names: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(names))


def single_node_tasks(nodes: tuple[NodeSpec, ...]) -> tuple[TaskSpec, ...]:
    """One task per node, following the tasks of the node's upstream nodes."""
    by_name = {node.name: node for node in nodes}
    return tuple(
        TaskSpec(node.task_id, node.group, (node,), tuple(by_name[p].full_task_id for p in node.upstream))
        for node in nodes
    )


@dataclass(frozen=True)
class Manifest:
    """A compiled Kedro pipeline: nodes in topological order, datasets, and identities."""

    package_name: str
    project_name: str
    pipeline_name: str
    dag_id: str
    env: str | None
    nodes: tuple[NodeSpec, ...]
    datasets: dict[str, DatasetSpec] = field(default_factory=dict)
    grouped_tasks: tuple[TaskSpec, ...] = ()
    """The tasks when nodes are grouped (``--group-by``); empty: one task per node."""
    parameters: tuple[tuple[str, Any], ...] = ()
    """(name, value) of the top-level parameters the nodes read, values as JSON data."""

    @cached_property
    def tasks(self) -> tuple[TaskSpec, ...]:
        """The DAG's node tasks, in topological order."""
        return self.grouped_tasks or single_node_tasks(self.nodes)

    def edges(self) -> list[tuple[str, str]]:
        """(upstream task id, downstream task id) pairs, in a stable order."""
        return list(self._edges)

    @cached_property
    def _edges(self) -> tuple[tuple[str, str], ...]:
        return tuple((parent, task.full_task_id) for task in self.tasks for parent in task.upstream)

    # The lookups below are built once per manifest: rendering asks them for every node, and
    # rebuilding them per node made exporting a pipeline of n nodes cost n squared.
    @cached_property
    def _by_name(self) -> dict[str, NodeSpec]:
        return {node.name: node for node in self.nodes}

    @cached_property
    def _producers(self) -> dict[str, str]:
        return {out: node.name for node in self.nodes for out in node.outputs}

    @cached_property
    def _consumers(self) -> dict[str, set[str]]:
        consumers: dict[str, set[str]] = {}
        for node in self.nodes:
            for name in node.inputs:
                consumers.setdefault(name, set()).add(node.name)
        return consumers

    def _is(self, name: str, kind: DatasetKind) -> bool:
        spec = self.datasets.get(name)
        return spec is not None and spec.kind == kind

    def intermediate_inputs(self, task: TaskSpec) -> tuple[str, ...]:
        """In-memory inputs produced by another task: loaded from the run's intermediate store."""
        producers, own = self._producers, set(task.node_names)
        return tuple(
            n for n in task.inputs
            if n in producers and producers[n] not in own and self._is(n, "memory")
        )

    def intermediate_outputs(self, task: TaskSpec) -> tuple[str, ...]:
        """In-memory outputs consumed by another task: saved to the run's intermediate store."""
        consumers, own = self._consumers, set(task.node_names)
        return tuple(
            n for n in task.outputs
            if consumers.get(n, set()) - own and self._is(n, "memory")
        )

    def versioned_inputs(self, task: TaskSpec) -> tuple[str, ...]:
        """Versioned inputs produced in the same DAG run: loaded at the run's save version."""
        producers = self._producers
        return tuple(
            n
            for n in task.inputs
            if n in producers and self._is(n, "persisted") and self.datasets[n].versioned
        )

    def shared_unversioned(self) -> list[tuple[str, str, tuple[str, ...]]]:
        """Persisted, unversioned datasets that one task writes and other tasks read, as
        ``(dataset, producing task, reading tasks)``: DAG runs that overlap share them."""
        task_of = {name: task.full_task_id for task in self.tasks for name in task.node_names}
        producers = self._producers
        consumers = self._consumers
        shared = []
        for name, producer in producers.items():
            spec = self.datasets.get(name)
            if spec is None or spec.kind != "persisted" or spec.versioned:
                continue
            readers = tuple(sorted({task_of[c] for c in consumers.get(name, ())} - {task_of[producer]}))
            if readers:
                shared.append((name, task_of[producer], readers))
        return sorted(shared)

    def outlets(self, task: TaskSpec) -> tuple[str, ...]:
        """Asset URIs of the persisted datasets the task's nodes save."""
        uris = (self.datasets[n].asset_uri(self.package_name) for n in task.outputs if n in self.datasets)
        return tuple(uri for uri in uris if uri)
