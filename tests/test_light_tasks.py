"""What a node task costs beyond the node: no MLflow where nothing is tracked."""

from __future__ import annotations

import json

import pytest
from conftest import run_dag, run_kedro
from kedro_projects import write_project

pytestmark = pytest.mark.slow

PROBE_NODES = '''
import sys


def first(value):
    return value


def modules_loaded(value):
    """Top-level modules of heavy libraries that this process has imported so far."""
    return {"value": value, "loaded": sorted({m.split(".")[0] for m in sys.modules} & {"mlflow"})}
'''

PROBE_REGISTRY = '''
from kedro.pipeline import Pipeline, node

from {package}.nodes import first, modules_loaded


def register_pipelines():
    pipeline = Pipeline([
        node(first, "params:value", "handed_over", name="first"),
        node(modules_loaded, "handed_over", "probe", name="probe"),
    ])
    return {{"__default__": pipeline}}
'''


def test_untracked_project_imports_no_mlflow_in_its_tasks(airflow_db, workspace):
    # no mlflow.yml: tracking is off. dag.test() runs every task in one process, so the probe
    # node sees whatever the start task and the first node task imported too.
    project = write_project(
        workspace, "untracked", PROBE_NODES, PROBE_REGISTRY,
        catalog={"probe": {"type": "json.JSONDataset", "filepath": "data/probe.json"}},
        parameters={"value": 3},
    )
    run_kedro(project, "airflow", "export", "--target-dir", str(workspace / "dags"))
    result = run_dag(workspace / "dags" / "untracked.py", "untracked")

    assert result.state == "success", result
    probe = json.loads((project / "data" / "probe.json").read_text())
    assert probe == {"value": 3, "loaded": []}
    # no task looked for an MLflow run id or link that nobody pushed (Airflow logs that as an error)
    assert "XCom not found" not in result.output, result.output[-5000:]
