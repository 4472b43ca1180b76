"""What a task costs beyond the node: its config opened once, no MLflow where nothing is tracked."""

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


COUNTING_SETTINGS = '''
"""Settings whose config loader notes every time it is opened."""
from pathlib import Path

from kedro.config import OmegaConfigLoader


class CountingConfigLoader(OmegaConfigLoader):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        with open(Path(__file__).parents[2] / "data" / "config_opened.log", "a") as log:
            log.write("opened\\n")


CONFIG_LOADER_CLASS = CountingConfigLoader
'''


def test_tasks_open_the_config_once_and_import_no_mlflow_when_untracked(airflow_db, workspace):
    # no mlflow.yml: tracking is off. dag.test() runs every task in one process, so the probe
    # node sees whatever the start task and the first node task imported too.
    project = write_project(
        workspace, "untracked", PROBE_NODES, PROBE_REGISTRY,
        catalog={"probe": {"type": "json.JSONDataset", "filepath": "data/probe.json"}},
        parameters={"value": 3},
    )
    (project / "src" / "untracked" / "settings.py").write_text(COUNTING_SETTINGS)
    run_kedro(project, "airflow", "export", "--target-dir", str(workspace / "dags"))
    opened = project / "data" / "config_opened.log"
    opened.unlink()  # what the export opened
    result = run_dag(workspace / "dags" / "untracked.py", "untracked")

    assert result.state == "success", result
    probe = json.loads((project / "data" / "probe.json").read_text())
    assert probe == {"value": 3, "loaded": []}
    # no task looked for an MLflow run id or link that nobody pushed (Airflow logs that as an error)
    assert "XCom not found" not in result.output, result.output[-5000:]
    # each of the four tasks (start, two nodes, end) read credentials, airflow.yml, parameters
    # and the catalog through one config loader, its Kedro session's included
    assert opened.read_text().count("opened") == len(result.tasks) == 4, result.tasks
