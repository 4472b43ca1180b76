"""The compiler on in-memory Kedro pipelines, without a project: tasks, edges, data, params."""

from __future__ import annotations

import pytest
from kedro.pipeline import Pipeline, node, pipeline

from airflow_kedro_mlflow.config.catalog import catalog_resolver
from airflow_kedro_mlflow.core.errors import ExportError
from airflow_kedro_mlflow.export.compiler import compile_pipeline


def identity(x):
    return x


def pair(x, y):
    return x


CATALOG = {
    "raw": {"type": "pandas.CSVDataset", "filepath": "s3://bucket/data/raw.csv", "versioned": True},
    "model": {"type": "pickle.PickleDataset", "filepath": "data/06_models/model.pkl"},
}


def _compile(nodes, group_by=None, parameters=None):
    return compile_pipeline(Pipeline(nodes), catalog=catalog_resolver(CATALOG), package_name="pkg",
                            project_name="pkg", pipeline_name="__default__", env=None,
                            group_by=group_by, parameters=parameters)


def test_tasks_edges_and_what_crosses_a_task_boundary():
    manifest = _compile([
        node(identity, "params:source", "raw", name="load"),
        node(pair, ["raw", "params:model.depth"], "clean", name="prepare"),
        node(identity, "clean", "model", name="train"),
    ], parameters={"source": "x", "model": {"depth": 3, "trees": 9}, "unused": 1})
    assert [t.full_task_id for t in manifest.tasks] == ["load", "prepare", "train"]
    assert manifest.edges() == [("load", "prepare"), ("prepare", "train")]
    prepare, train = manifest.tasks[1], manifest.tasks[2]
    assert manifest.intermediate_outputs(prepare) == ("clean",)  # in memory, read by another task
    assert manifest.intermediate_inputs(train) == ("clean",)
    assert manifest.versioned_inputs(prepare) == ("raw",)  # read at the run's save version
    assert list(manifest.outlets(manifest.tasks[0])) == ["s3://bucket/data/raw.csv"]
    assert list(manifest.outlets(train)) == ["kedro://pkg/model"]
    # the top-level parameters the nodes read, with their values: the DAG's params
    assert manifest.parameters == (("model", {"depth": 3, "trees": 9}), ("source", "x"))


def test_namespaces_become_task_groups_and_grouping_joins_memory_neighbours():
    template = Pipeline([node(identity, "raw", "features", name="featurize"),
                         node(identity, "features", "model", name="fit")])
    nodes = list(pipeline(template, namespace="forest", inputs={"raw"}).nodes)
    manifest = _compile([node(identity, "params:source", "raw", name="load"), *nodes])
    assert [t.full_task_id for t in manifest.tasks] == ["load", "forest.featurize", "forest.fit"]
    grouped = _compile([node(identity, "params:source", "raw", name="load"), *nodes],
                       group_by="memory")
    assert [t.node_names for t in grouped.tasks] == [("load",), ("forest.featurize", "forest.fit")]


def test_an_in_memory_input_no_node_produces_is_named():
    with pytest.raises(ExportError, match="node 'train' of pipeline '__default__' reads 'clean'"):
        _compile([node(identity, "clean", "model", name="train")])
