"""The promotion gate of the retraining DAG, against a real ``mlflow server`` (tracking + registry)."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pandas as pd
import pytest
import yaml
from conftest import copy_example, run_dag, run_kedro
from kedro_projects import relay_project

pytestmark = pytest.mark.slow

# A forest of one depth-1 tree: a model clearly worse than the configured one.
WORSE_MODEL = {"random_forest": {"model_options": {
    "estimator": "random_forest", "n_estimators": 1, "max_depth": 1, "random_state": 42}}}


@pytest.fixture
def retraining(mlflow_server, workspace):
    """The example in a Kedro env `server` that tracks into the test's MLflow server, with its own
    registered model name (the server is shared by the whole test session)."""
    name = f"wine-{uuid.uuid4().hex[:8]}"
    project = copy_example(workspace / "examples" / "wine_classifier")
    conf = project / "conf" / "server"
    conf.mkdir()
    (conf / "mlflow.yml").write_text(yaml.safe_dump({
        "server": {"mlflow_tracking_uri": mlflow_server},
        "tracking": {"experiment": {"name": name}},
    }))
    (conf / "airflow.yml").write_text(yaml.safe_dump({
        "default": {"promotion": {"registered_model": name, "model": "random_forest",
                                  "metric": "random_forest.accuracy", "alias": "champion"}},
        "data_processing": {"promotion": None},
        "inference": {"promotion": None},
    }))
    (conf / "catalog.yml").write_text(yaml.safe_dump({"champion_model": {
        "type": "airflow_kedro_mlflow.datasets.MlflowModelDataset",
        "flavor": "mlflow.sklearn",
        "model_uri": f"models:/{name}@champion",
    }}))
    run_kedro(project, "airflow", "export", "-e", "server", "-p", "__default__", "-p", "inference",
              "--target-dir", str(workspace / "dags"))
    return project, workspace / "dags", name


def _parent(client, experiment: str, run_id: str):
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    (parent,) = client.search_runs(
        [experiment_id],
        f"tags.`airflow.run_id` = '{run_id}' and tags.`airflow_kedro_mlflow.role` = 'parent'")
    return parent


def test_better_model_is_promoted_worse_one_only_registered(airflow_db, mlflow_server, retraining):
    from mlflow.tracking import MlflowClient

    project, dags, name = retraining
    client = MlflowClient(mlflow_server)

    first = run_dag(dags / "wine_classifier.py", "wine_classifier")
    assert first.state == "success", first
    assert first.tasks["kedro_promote_model"] == "success"
    champion = client.get_model_version_by_alias(name, "champion")
    assert champion.version == "1"
    parent = _parent(client, name, first.run_id)
    assert champion.run_id == parent.info.run_id
    assert parent.data.tags["promotion.decision"] == "promoted"
    assert parent.data.tags["promotion.reason"] == "no version held @champion"
    good_accuracy = parent.data.metrics["random_forest.accuracy"]
    assert parent.data.tags["promotion.candidate_value"] == repr(good_accuracy)
    assert first.xcoms["kedro_promote_model"]["return_value"]["promotion.model_version"] == "1"

    worse = run_dag(dags / "wine_classifier.py", "wine_classifier", conf=WORSE_MODEL)
    assert worse.state == "success", worse
    parent = _parent(client, name, worse.run_id)
    worse_accuracy = parent.data.metrics["random_forest.accuracy"]
    assert worse_accuracy < good_accuracy
    assert parent.data.params["random_forest.model_options.max_depth"] == "1"
    versions = client.search_model_versions(f"name = '{name}'")
    assert sorted(v.version for v in versions) == ["1", "2"]  # registered...
    assert client.get_model_version_by_alias(name, "champion").version == "1"  # ...not promoted
    tags = parent.data.tags
    assert tags["promotion.decision"] == "not_promoted"
    assert tags["promotion.model_version"] == "2" and tags["promotion.champion_version"] == "1"
    assert float(tags["promotion.champion_value"]) == good_accuracy
    assert float(tags["promotion.candidate_value"]) == worse_accuracy
    assert "does not beat" in tags["promotion.reason"]
    assert client.get_model_version(name, "2").tags["promotion.decision"] == "not_promoted"

    # Rerunning the gate in the same DAG run (a cleared task) registers nothing new.
    rerun = subprocess.run(
        [sys.executable, "-m", "airflow", "tasks", "test", "wine_classifier", "kedro_promote_model",
         worse.run_id], capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert len(client.search_model_versions(f"name = '{name}'")) == 2
    assert client.get_model_version_by_alias(name, "champion").version == "1"

    # The inference pipeline scores with the champion (the good model), loaded from the registry.
    inference = run_dag(dags / "wine_classifier__inference.py", "wine_classifier__inference")
    assert inference.state == "success", inference
    predictions = pd.read_csv(project / "data" / "07_model_output" / "wine_predictions.csv")
    # each training run saved its version of the raw data; inference read the latest
    raw = sorted((project / "data" / "01_raw" / "wine.csv").glob("*/wine.csv"))[-1]
    truth = pd.read_csv(raw)["target"]
    assert len(predictions) == len(truth) == 178
    assert (predictions["prediction"] == truth).mean() > 0.9


def test_misnamed_metric_fails_the_gate_naming_key_and_run(airflow_db, mlflow_server, workspace):
    """A gate that cannot decide fails its task with the airflow.yml key at fault; the DAG run's
    MLflow run is FAILED and names the gate; nothing is registered."""
    from mlflow.tracking import MlflowClient

    name = f"relay-{uuid.uuid4().hex[:8]}"
    project = relay_project(workspace, package="gated", extra_conf={"airflow.yml": {"default": {
        "promotion": {"registered_model": name, "model": "model", "metric": "acuracy"}}}})
    conf = project / "conf" / "server"
    conf.mkdir()
    (conf / "mlflow.yml").write_text(yaml.safe_dump({
        "server": {"mlflow_tracking_uri": mlflow_server},
        "tracking": {"experiment": {"name": name}}}))
    run_kedro(project, "airflow", "export", "-e", "server", "--target-dir", str(workspace / "dags"))
    result = run_dag(workspace / "dags" / "gated.py", "gated")
    assert result.state == "failed"
    assert result.tasks["kedro_promote_model"] == "failed" and result.tasks["report"] == "success"
    assert "airflow.yml key 'promotion.metric'" in result.output
    assert "no metric 'acuracy'" in result.output
    client = MlflowClient(mlflow_server)
    parent = _parent(client, name, result.run_id)
    assert parent.info.status == "FAILED"
    assert parent.data.tags["kedro.failed_nodes"] == "kedro_promote_model"
    assert client.search_model_versions(f"name = '{name}'") == []
