"""OpenLineage events of a real DAG run name the catalog datasets each node task read and wrote."""

from __future__ import annotations

import json

import pytest
from conftest import copy_example, run_dag, run_kedro

pytestmark = pytest.mark.slow
pytest.importorskip("airflow.providers.openlineage")


def _events(path):
    """The events of the provider's file transport: JSON objects, one per line, but its writers
    (threads of each task process) may append two without a newline between them."""
    text, events, decoder, at = path.read_text(), [], json.JSONDecoder(), 0
    while (at := _skip_blanks(text, at)) < len(text):
        event, at = decoder.raw_decode(text, at)
        events.append(event)
    return events


def _skip_blanks(text: str, at: int) -> int:
    while at < len(text) and text[at].isspace():
        at += 1
    return at


def test_node_tasks_report_their_catalog_inputs_and_outputs(airflow_db, workspace, tmp_path):
    project = copy_example(workspace / "examples" / "wine_classifier")
    run_kedro(project, "airflow", "export", "--target-dir", str(workspace / "dags"))
    events_file = tmp_path / "openlineage.jsonl"
    import os

    env = {**os.environ,
           "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
               {"type": "file", "log_file_path": str(events_file), "append": True}),
           "AIRFLOW__OPENLINEAGE__NAMESPACE": "akm-test"}
    result = run_dag(workspace / "dags" / "wine_classifier.py", "wine_classifier", env=env)
    assert result.state == "success", result

    complete = {}
    for event in _events(events_file):
        if event.get("eventType") == "COMPLETE" and "." in event["job"]["name"]:
            task = event["job"]["name"].split(".", 1)[1]  # <dag_id>.<task_id>
            complete[task] = ({(d["namespace"], d["name"]) for d in event.get("inputs", [])},
                              {(d["namespace"], d["name"]) for d in event.get("outputs", [])})
    kedro = "kedro://wine_classifier"
    assert complete["data_processing.load_wine_data"] == (set(), {(kedro, "wine_raw")})
    assert complete["data_processing.clean_data"] == ({(kedro, "wine_raw")}, set())
    assert complete["random_forest.train_model"] == (set(), {(kedro, "random_forest.model")})
    assert complete["random_forest.evaluate_model"] == (
        {(kedro, "random_forest.model")},
        {(kedro, "random_forest.metrics"), (kedro, "random_forest.confusion_matrix")})
