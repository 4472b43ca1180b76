"""A synthetic Kedro project of any size, for the export and parse benchmarks and their tests.

The pipeline is layered: ``width`` nodes per layer, each node of a layer reading two outputs of
the layer before (its own column and the next one) and a parameter, so every node but the first
layer's has two upstream tasks (one in a chain, ``width=1``), and every node logs a parameter.
Its dependencies are known here, independently of any exporter, so a test can compare an
exported DAG against them edge for edge.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path

NODES_SOURCE = '''
"""Trivial nodes: the benchmarks measure orchestration, not work."""


def seed(value):
    return value


def combine(*values):
    return sum(values)
'''

REGISTRY_SOURCE = '''
from kedro.pipeline import Pipeline, node

from {package}.nodes import combine, seed

LAYERS = {layers}
WIDTH = {width}


def _name(layer, column):
    return f"n_{{layer}}_{{column}}"


def _output(layer, column):
    return f"d_{{layer}}_{{column}}"


def register_pipelines():
    nodes = []
    for column in range(WIDTH):
        nodes.append(node(seed, "params:start", _output(0, column), name=_name(0, column)))
    for layer in range(1, LAYERS):
        for column in range(WIDTH):
            sources = sorted({{column, (column + 1) % WIDTH}})
            inputs = [_output(layer - 1, source) for source in sources] + ["params:start"]
            nodes.append(node(combine, inputs, _output(layer, column), name=_name(layer, column)))
    pipeline = Pipeline(nodes)
    return {{"__default__": pipeline}}
'''


@dataclass(frozen=True)
class SyntheticPipeline:
    layers: int
    width: int

    @property
    def node_count(self) -> int:
        return self.layers * self.width

    def node_names(self) -> set[str]:
        return {f"n_{layer}_{column}" for layer in range(self.layers) for column in range(self.width)}

    def dependencies(self) -> set[tuple[str, str]]:
        """(upstream node, downstream node) pairs, as the pipeline's data flow defines them."""
        edges = set()
        for layer in range(1, self.layers):
            for column in range(self.width):
                for source in {column, (column + 1) % self.width}:
                    edges.add((f"n_{layer - 1}_{source}", f"n_{layer}_{column}"))
        return edges


def write_synthetic_project(
    root: Path, nodes: int, width: int = 10, package: str = "synthetic"
) -> tuple[Path, SyntheticPipeline]:
    """A Kedro project at ``root/package`` whose default pipeline has ``nodes`` trivial nodes."""
    shape = SyntheticPipeline(layers=max(1, nodes // width), width=width)
    project = root / package
    source = project / "src" / package
    source.mkdir(parents=True)
    for folder in ("conf/base", "conf/local", "data"):
        (project / folder).mkdir(parents=True)
    (project / ".telemetry").write_text("consent: false\n")
    (project / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""
            [tool.kedro]
            package_name = "{package}"
            project_name = "{package}"
            kedro_init_version = "1.7.0"
            source_dir = "src"
            """
        )
    )
    (source / "__init__.py").write_text('__version__ = "0.1.0"\n')
    (source / "settings.py").write_text('"""Default settings."""\n')
    (source / "nodes.py").write_text(NODES_SOURCE)
    (source / "pipeline_registry.py").write_text(
        REGISTRY_SOURCE.format(package=package, layers=shape.layers, width=shape.width)
    )
    (project / "conf" / "base" / "catalog.yml").write_text("{}\n")
    (project / "conf" / "base" / "parameters.yml").write_text("start: 1\n")
    return project, shape
