"""The plain-data description of a Kedro pipeline that a DAG is rendered from.

The manifest is the seam between Kedro (``compiler``, which needs the project importable) and
Airflow (``renderer``, which needs nothing but this data). It holds everything the DAG file must
state at parse time: task ids, groups, edges and, per task, which datasets cross a task boundary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

DatasetKind = Literal["parameter", "persisted", "memory"]


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset of the pipeline as the catalog of the exported env declares it."""

    name: str
    kind: DatasetKind
    type: str | None = None
    versioned: bool = False
    filepath: str | None = None
    """Where the catalog persists it, as configured (an URL, or a path relative to the project)."""

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

    @property
    def full_task_id(self) -> str:
        """The task id Airflow shows, prefixed by its TaskGroups."""
        return ".".join((*self.group, self.task_id))


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

    def edges(self) -> list[tuple[str, str]]:
        """(upstream task id, downstream task id) pairs, in a stable order."""
        by_name = self._by_name
        return [
            (by_name[parent].full_task_id, node.full_task_id)
            for node in self.nodes
            for parent in node.upstream
        ]

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

    def intermediate_inputs(self, node: NodeSpec) -> tuple[str, ...]:
        """In-memory inputs produced by another task: loaded from the run's intermediate store."""
        producers = self._producers
        return tuple(n for n in node.inputs if n in producers and self._is(n, "memory"))

    def intermediate_outputs(self, node: NodeSpec) -> tuple[str, ...]:
        """In-memory outputs consumed by another task: saved to the run's intermediate store."""
        consumers = self._consumers
        return tuple(n for n in node.outputs if consumers.get(n) and self._is(n, "memory"))

    def versioned_inputs(self, node: NodeSpec) -> tuple[str, ...]:
        """Versioned inputs produced in the same DAG run: loaded at the run's save version."""
        producers = self._producers
        return tuple(
            n
            for n in node.inputs
            if n in producers and self._is(n, "persisted") and self.datasets[n].versioned
        )

    def shared_unversioned(self) -> list[tuple[str, str, tuple[str, ...]]]:
        """Persisted, unversioned datasets that one task writes and other tasks read, as
        ``(dataset, producing task, reading tasks)``: DAG runs that overlap share them."""
        by_name = self._by_name
        producers = self._producers
        consumers = self._consumers
        shared = []
        for name, producer in producers.items():
            spec = self.datasets.get(name)
            if spec is None or spec.kind != "persisted" or spec.versioned or not consumers.get(name):
                continue
            readers = tuple(sorted(by_name[c].full_task_id for c in consumers[name]))
            shared.append((name, by_name[producer].full_task_id, readers))
        return sorted(shared)

    def outlets(self, node: NodeSpec) -> tuple[str, ...]:
        """Asset URIs of the persisted datasets the node saves."""
        uris = (self.datasets[n].asset_uri(self.package_name) for n in node.outputs if n in self.datasets)
        return tuple(uri for uri in uris if uri)
