"""S3 everywhere (MLflow artifacts, catalog, intermediate data), against moto's S3 HTTP API."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest
import yaml
from conftest import AIRFLOW_HOME, REPO, copy_example, run_dag, run_kedro
from secret_scan import assert_nowhere, file_contents, mlflow_runs

from airflow_kedro_mlflow.core.ids import storage_key

pytestmark = pytest.mark.slow
BUCKET = "wine-classifier"


def _example_on(endpoint, key: str, secret: str, workspace, mlflow_server, monkeypatch):
    for name, value in {"WINE_S3_KEY": key, "WINE_S3_SECRET": secret,
                        "WINE_S3_ENDPOINT_URL": endpoint.url}.items():
        monkeypatch.setenv(name, value)
    project = copy_example(workspace / "examples" / "wine_classifier")
    experiment = f"wine-s3-{uuid.uuid4().hex[:8]}"
    config_file = project / "conf" / "s3" / "mlflow.yml"
    config = yaml.safe_load(config_file.read_text())
    config["server"]["mlflow_tracking_uri"] = mlflow_server
    config["tracking"]["experiment"]["name"] = experiment
    # Artifacts straight to S3 from the tasks (the example's env has the server proxy them):
    # the MLflow client then needs the S3 keys, through mlflow.yml's server.credentials.
    config["tracking"]["experiment"]["create_experiment_kwargs"] = {
        "artifact_location": f"s3://{BUCKET}/{experiment}"}
    config["server"]["credentials"] = "mlflow"
    config_file.write_text(yaml.safe_dump(config))
    credentials_file = project / "conf" / "s3" / "credentials.yml"
    credentials = yaml.safe_load(credentials_file.read_text())
    credentials["mlflow"] = {"AWS_ACCESS_KEY_ID": "${oc.env:WINE_S3_KEY}",
                             "AWS_SECRET_ACCESS_KEY": "${oc.env:WINE_S3_SECRET}",
                             "MLFLOW_S3_ENDPOINT_URL": "${oc.env:WINE_S3_ENDPOINT_URL}"}
    credentials_file.write_text(yaml.safe_dump(credentials))
    run_kedro(project, "airflow", "export", "-e", "s3", "--target-dir", str(workspace / "dags"))
    return project, workspace / "dags" / "wine_classifier_s3.py", experiment, (key, secret)


@pytest.fixture
def s3_example(airflow_db, workspace, s3_server, mlflow_server, monkeypatch):
    """The example project in its `s3` env, with distinctive credentials planted in the env."""
    key, secret = f"plantedkey{uuid.uuid4().hex}", f"plantedsecret{uuid.uuid4().hex}"
    s3_server.ensure_bucket(BUCKET, key, secret)
    return _example_on(s3_server, key, secret, workspace, mlflow_server, monkeypatch)


def test_wrong_secret_fails_with_s3s_error_and_prints_no_credential(
    airflow_db, workspace, s3_auth_server, mlflow_server, monkeypatch
):
    s3_auth_server.ensure_bucket(BUCKET, s3_auth_server.key, s3_auth_server.secret)
    wrong = f"wrongsecret{uuid.uuid4().hex}"
    _, dag_file, _, _ = _example_on(s3_auth_server, s3_auth_server.key, wrong, workspace,
                                    mlflow_server, monkeypatch)
    result = run_dag(dag_file, "wine_classifier_s3")
    assert result.state == "failed"
    # the start task already uses S3 (the run's intermediate store): it fails, once, no node runs
    assert result.tasks["kedro_run_start"] == "failed"
    assert result.tasks["data_processing.load_wine_data"] == "upstream_failed"
    # S3's own refusal reaches the task log (s3fs turns a HEAD's 403 into "Forbidden")
    assert "Forbidden" in result.output or "SignatureDoesNotMatch" in result.output
    for value in (wrong, s3_auth_server.key, s3_auth_server.secret):
        assert value not in result.output



def test_example_dag_keeps_everything_on_s3_and_leaks_no_secret(s3_example, s3_server,
                                                                mlflow_server, workspace):
    project, dag_file, experiment, planted = s3_example
    result = run_dag(dag_file, "wine_classifier_s3")
    assert result.state == "success", result

    from mlflow.tracking import MlflowClient

    client = MlflowClient(mlflow_server)
    exp = client.get_experiment_by_name(experiment)
    (parent,) = client.search_runs([exp.experiment_id], "tags.`airflow_kedro_mlflow.role` = 'parent'")
    artifacts = s3_server.keys(BUCKET, f"{experiment}/")
    run_prefix = f"{experiment}/{parent.info.run_id}/artifacts/"
    assert {run_prefix + p for p in ("random_forest/confusion_matrix.png",
                                     "logistic_regression/confusion_matrix.png")} <= set(artifacts)
    # the models, MLflow 3 logged models of the run, under the experiment's artifact location too
    models = client.search_logged_models(experiment_ids=[exp.experiment_id])
    assert sorted(m.name for m in models) == ["logistic_regression", "random_forest"]
    for model in models:
        assert model.artifact_location == f"s3://{BUCKET}/{experiment}/models/{model.model_id}/artifacts"
        assert f"{experiment}/models/{model.model_id}/artifacts/MLmodel" in artifacts
    catalog = s3_server.keys(BUCKET, "data/")
    save_version = parent.data.tags["kedro.save_version"]
    assert f"data/01_raw/wine.csv/{save_version}/wine.csv" in catalog
    assert f"data/06_models/random_forest/model.pkl/{save_version}/model.pkl" in catalog
    assert "data/08_reporting/random_forest/metrics.json" in catalog
    # this run's intermediate data is kept on S3 for the retention, with its end record
    run_data = f"airflow-intermediate/wine_classifier_s3/{storage_key(result.run_id)}/"
    kept = {k.rsplit("/", 1)[-1] for k in s3_server.keys(BUCKET, run_data)}
    assert {"X_train.pickle", "_dag_run_end.json"} <= kept
    # nothing fell back to the project's disk: a worker needs no writable project folder
    assert [p for p in (project / "data").rglob("*") if p.is_file() and p.name != ".gitkeep"] == []

    _assert_nowhere(planted, workspace, result.output, mlflow_server, experiment)


def test_failed_run_keeps_its_intermediate_data_on_s3(s3_example, s3_server):
    project, dag_file, experiment, _ = s3_example
    result = run_dag(dag_file, "wine_classifier_s3",
                     conf={"random_forest": {"model_options": {"n_estimators": -1}}})
    assert result.state == "failed"
    assert result.tasks["random_forest.train_model"] == "failed"
    prefix = f"airflow-intermediate/wine_classifier_s3/{storage_key(result.run_id)}/"
    kept = {Path(k).name for k in s3_server.keys(BUCKET, prefix)}
    assert {"X_train.pickle", "y_train.pickle", "X_test.pickle", "y_test.pickle"} <= kept


def test_missing_credentials_entry_is_named_without_values(s3_example, workspace):
    project, dag_file, experiment, planted = s3_example
    airflow_yml = project / "conf" / "s3" / "airflow.yml"
    airflow_yml.write_text(airflow_yml.read_text().replace("credentials: s3", "credentials: s3_typo"))
    result = run_dag(dag_file, "wine_classifier_s3")
    assert result.state == "failed"
    assert result.tasks["kedro_run_start"] == "failed"
    assert "names credentials 's3_typo', which" in result.output
    assert "credentials.yml does not define" in result.output
    for value in planted:
        assert value not in result.output


def _assert_nowhere(planted: tuple[str, str], workspace: Path, output: str, mlflow_server: str,
                    experiment: str) -> None:
    """No planted value in DAG files, the Airflow DB, task logs, task output or MLflow runs."""
    _assert_nowhere_but({}, planted, workspace, output, mlflow_server, experiment)


def _assert_nowhere_but(extra: dict[str, bytes], planted: tuple[str, str], workspace: Path,
                        output: str, mlflow_server: str, experiment: str) -> None:
    places = {**extra, "dag.test output": output.encode(),
              **file_contents(*(workspace / "dags").rglob("*.py"), *AIRFLOW_HOME.glob("*.db*"),
                              AIRFLOW_HOME / "logs"),
              **mlflow_runs(mlflow_server, experiment)}
    assert len(places) > 3
    assert_nowhere(planted, places)


def test_s3_down_names_the_endpoint_and_masks_only_secrets(airflow_db, workspace, mlflow_server,
                                                          monkeypatch):
    """Nothing listens at the S3 endpoint: the start task fails with the client's error, which
    names the endpoint (an URL is not a secret); the key and secret stay out of the log."""
    from conftest import S3Endpoint, free_port

    down = S3Endpoint(f"http://127.0.0.1:{free_port()}")
    key, secret = f"plantedkey{uuid.uuid4().hex}", f"plantedsecret{uuid.uuid4().hex}"
    _, dag_file, _, _ = _example_on(down, key, secret, workspace, mlflow_server, monkeypatch)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # botocore gives up at once, not after retries
    result = run_dag(dag_file, "wine_classifier_s3")
    assert result.tasks["kedro_run_start"] == "failed"
    assert f'Could not connect to the endpoint URL: "{down.url}' in result.output, result
    assert "***/" not in result.output
    assert key not in result.output and secret not in result.output


def test_credentials_from_an_airflow_connection_only(airflow_db, workspace, s3_server,
                                                     mlflow_server, monkeypatch):
    """credentials.yml names an Airflow Connection (here AIRFLOW_CONN_WINE_S3, as a secrets
    backend would serve it); no credential is in the task environment or any Kedro file."""
    import json

    key, secret = f"plantedkey{uuid.uuid4().hex}", f"plantedsecret{uuid.uuid4().hex}"
    s3_server.ensure_bucket(BUCKET, key, secret)
    monkeypatch.setenv("AIRFLOW_CONN_WINE_S3", json.dumps({
        "conn_type": "aws", "login": key, "password": secret,
        "extra": {"endpoint_url": s3_server.url}}))
    project, dag_file, experiment, planted = _example_on(s3_server, "unused", "unused", workspace,
                                                         mlflow_server, monkeypatch)
    for name in ("WINE_S3_KEY", "WINE_S3_SECRET", "WINE_S3_ENDPOINT_URL"):
        monkeypatch.delenv(name)
    (project / "conf" / "s3" / "credentials.yml").write_text(yaml.safe_dump({
        "s3": "${airflow_conn:wine_s3}",
        "mlflow": {"AWS_ACCESS_KEY_ID": "${airflow_conn:wine_s3,login}",
                   "AWS_SECRET_ACCESS_KEY": "${airflow_conn:wine_s3,password}",
                   "MLFLOW_S3_ENDPOINT_URL": "${airflow_conn:wine_s3,extra.endpoint_url}"}}))
    result = run_dag(dag_file, "wine_classifier_s3")
    assert result.state == "success", result
    save_version = _parent(mlflow_server, experiment).data.tags["kedro.save_version"]
    assert f"data/01_raw/wine.csv/{save_version}/wine.csv" in s3_server.keys(BUCKET, "data/")
    # nor in the project's configuration: credentials.yml names the Connection only
    _assert_nowhere_but(file_contents(project / "conf"), (key, secret), workspace, result.output,
                        mlflow_server, experiment)


def _parent(mlflow_server: str, experiment: str):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(mlflow_server)
    exp = client.get_experiment_by_name(experiment)
    (parent,) = client.search_runs([exp.experiment_id], "tags.`airflow_kedro_mlflow.role` = 'parent'")
    return parent


def test_a_dag_file_exported_by_0_1_0_still_runs(s3_example, workspace):
    """Upgrading the package must not need a re-export: the DAG file the first release wrote
    (kept in tests/fixtures/) parses and runs with today's operators."""
    _, dag_file, _, _ = s3_example
    shutil.copyfile(REPO / "tests" / "fixtures" / "wine_classifier_s3_exported_0_1_0.py", dag_file)
    result = run_dag(dag_file, "wine_classifier_s3")
    assert result.state == "success", result
    assert result.tasks["kedro_promote_model"] == "success"
