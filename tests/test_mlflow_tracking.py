"""One MLflow parent run per DAG run, against a real ``mlflow server`` on loopback."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml
from conftest import copy_example, run_dag, run_kedro, with_kedro_mlflow
from kedro_projects import kedro_mlflow_project, relay_project

pytestmark = pytest.mark.slow


@pytest.fixture(params=[False, True], ids=["without-kedro-mlflow", "with-kedro-mlflow"])
def env(request) -> dict[str, str] | None:
    """Each test runs twice: kedro-mlflow absent, and installed with its hook active."""
    return with_kedro_mlflow(request.param)

EXAMPLE_NODES = 7


def _client(url: str):
    import mlflow
    from mlflow.tracking import MlflowClient

    # Listing a run's artifacts also lists its logged models' through the *global* tracking URI.
    mlflow.set_tracking_uri(url)
    return MlflowClient(tracking_uri=url)


def _server_env(project: Path, url: str, experiment: str, airflow: dict | None = None) -> None:
    """A Kedro env ``server`` tracking into the test's MLflow server."""
    conf = project / "conf" / "server"
    conf.mkdir(parents=True, exist_ok=True)
    (conf / "mlflow.yml").write_text(yaml.safe_dump({
        "server": {"mlflow_tracking_uri": url},
        "tracking": {"experiment": {"name": experiment}},
    }))
    if airflow:
        (conf / "airflow.yml").write_text(yaml.safe_dump(airflow))


def _runs(url: str, experiment: str) -> tuple[list, list]:
    client = _client(url)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return parents, children


def _export(project: Path, dags: Path, env: dict | None) -> None:
    run_kedro(project, "airflow", "export", "-e", "server", "--target-dir", str(dags), env=env)


def test_example_dag_is_one_parent_run_with_a_child_per_node(airflow_db, mlflow_server, workspace,
                                                             env):
    experiment = f"wine-{uuid.uuid4().hex[:8]}"
    project = copy_example(workspace / "examples" / "wine_classifier")
    _server_env(project, mlflow_server, experiment)
    _export(project, workspace / "dags", env)
    result = run_dag(workspace / "dags" / "wine_classifier.py", "wine_classifier", env=env)
    assert result.state == "success", result

    (parent,), children = _runs(mlflow_server, experiment)
    assert parent.info.status == "FINISHED"
    assert len(children) == EXAMPLE_NODES
    assert {c.info.status for c in children} == {"FINISHED"}
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    assert {c.data.tags["kedro.node"] for c in children} >= {"random_forest.train_model",
                                                              "data_processing.split_data"}
    tags = parent.data.tags
    assert tags["airflow.dag_id"] == "wine_classifier"
    assert tags["airflow.run_id"] == result.run_id
    assert tags["airflow.run_type"] == "manual"
    assert tags["airflow.dag_run_url"].endswith("/dags/wine_classifier/runs/" +
                                                result.run_id.replace(":", "%3A").replace("+", "%2B"))
    assert tags["kedro.pipeline"] == "__default__" and tags["kedro.env"] == "server"
    assert parent.data.params["random_forest.model_options.n_estimators"] == "100"
    assert parent.data.params["data_processing.split.test_size"] == "0.25"
    assert parent.data.metrics["random_forest.accuracy"] > 0.85
    assert parent.data.metrics["logistic_regression.f1_macro"] > 0.85
    assert "dag_run_duration_s" in parent.data.metrics
    artifacts = {a.path for ns in ("random_forest", "logistic_regression")
                 for a in _client(mlflow_server).list_artifacts(parent.info.run_id, ns)}
    # plots as run artifacts; the models' files are listed with the run too (MLflow 3 logged models)
    assert {f"{ns}/{name}" for ns in ("random_forest", "logistic_regression")
            for name in ("confusion_matrix.png", "MLmodel")} <= artifacts, artifacts
    # The models are MLflow (sklearn) models logged from the parent run, named by namespace.
    models = _client(mlflow_server).search_logged_models(experiment_ids=[parent.info.experiment_id])
    assert sorted(m.name for m in models) == ["logistic_regression", "random_forest"]
    assert {m.source_run_id for m in models} == {parent.info.run_id}
    train = next(c for c in children if c.data.tags["kedro.node"] == "random_forest.train_model")
    assert train.data.params["random_forest.model_options.max_depth"] == "5"
    assert "duration_s" in train.data.metrics

    # The "MLflow run" extra link of each task opens that task's run in the MLflow UI.
    experiment_id = parent.info.experiment_id
    links = {task: next(v for k, v in xcoms.items() if k.startswith("_link_"))
             for task, xcoms in result.xcoms.items() if any(k.startswith("_link_") for k in xcoms)}
    assert links["kedro_run_start"] == links["kedro_run_end"] == (
        f"{mlflow_server}/#/experiments/{experiment_id}/runs/{parent.info.run_id}")
    assert links["random_forest.train_model"] == (
        f"{mlflow_server}/#/experiments/{experiment_id}/runs/{train.info.run_id}")


@pytest.mark.parametrize("env", [False], indirect=True, ids=["without-kedro-mlflow"])
# One run (they are slow): namespace grouping, set in airflow.yml, so data also crosses from one
# group to the next through the intermediate store; --group-by and memory grouping are export
# tests in test_export_cli.py and share this runtime path.
@pytest.mark.parametrize("group_by, where", [("namespace", "airflow.yml")])
def test_grouped_example_runs_green_with_a_child_per_node(airflow_db, mlflow_server, workspace,
                                                          env, group_by, where):
    experiment = f"wine-{uuid.uuid4().hex[:8]}"
    project = copy_example(workspace / "examples" / "wine_classifier")
    # the env's `default` block replaces base's: the gate, registering a model of this test only
    airflow = yaml.safe_load((project / "conf" / "base" / "airflow.yml").read_text())
    airflow["default"]["promotion"]["registered_model"] = experiment
    if where == "airflow.yml":
        airflow["default"]["group_by"] = group_by
    _server_env(project, mlflow_server, experiment, airflow=airflow)
    options = ["--group-by", group_by] if where == "cli" else []
    run_kedro(project, "airflow", "export", "-e", "server", *options,
              "--target-dir", str(workspace / "dags"), env=env)
    result = run_dag(workspace / "dags" / "wine_classifier.py", "wine_classifier", env=env)
    assert result.state == "success", result
    node_tasks = set(result.tasks) - {"kedro_run_start", "kedro_run_end", "kedro_promote_model"}
    assert len(node_tasks) == {"namespace": 3, "memory": 2}[group_by], result.tasks

    (parent,), children = _runs(mlflow_server, experiment)
    assert parent.info.status == "FINISHED"
    assert len(children) == EXAMPLE_NODES  # still a child run per node
    assert {c.info.status for c in children} == {"FINISHED"}
    assert len({c.data.tags["kedro.node"] for c in children}) == EXAMPLE_NODES
    assert parent.data.metrics["random_forest.accuracy"] > 0.85
    # the gate found the model of the node's (finished) child run and promoted it
    decision = result.xcoms["kedro_promote_model"]["return_value"]
    assert decision["promotion.decision"] == "promoted", decision
    version = _client(mlflow_server).get_model_version_by_alias(experiment, "champion")
    model_id = getattr(version, "model_id", None) or version.source.removeprefix("models:/")
    model = _client(mlflow_server).get_logged_model(model_id)
    train = next(c for c in children if c.data.tags["kedro.node"] == "random_forest.train_model")
    assert model.tags["airflow_kedro_mlflow.node_run_id"] == train.info.run_id


@pytest.mark.parametrize("env", [False], indirect=True, ids=["without-kedro-mlflow"])
def test_retried_group_reruns_every_node_with_a_child_per_node_and_try(
        airflow_db, mlflow_server, workspace, tmp_path, env):
    # `summary` in memory too: the four nodes are one memory group, whose last node fails once
    catalog = {"report": {"type": "json.JSONDataset", "filepath": "data/report.json"}}
    project = relay_project(workspace, package="relay_grouped", catalog=catalog)
    experiment = f"grouped-{uuid.uuid4().hex[:8]}"
    _server_env(project, mlflow_server, experiment, airflow={
        "default": {"retries": 1, "retry_delay": "1s", "group_by": "memory"}})
    _export(project, workspace / "dags", env)
    result = run_dag(workspace / "dags" / "relay_grouped.py", "relay_grouped",
                     conf={"fail_once_marker": str(tmp_path / "failed-once")}, env=env)
    assert result.state == "success", result
    assert set(result.tasks) == {"kedro_run_start", "make_numbers_split_parity_summarize_report",
                                 "kedro_run_end"}, result.tasks

    (parent,), children = _runs(mlflow_server, experiment)
    assert parent.info.status == "FINISHED"
    tries = {}
    for child in children:
        tries.setdefault(child.data.tags["airflow.try_number"], {})[
            child.data.tags["kedro.node"]] = child.info.status
    assert tries == {  # the retry ran the whole group again, each node in a child of its own
        "1": {"make_numbers": "FINISHED", "split_parity": "FINISHED", "summarize": "FINISHED",
              "report": "FAILED"},
        "2": {"make_numbers": "FINISHED", "split_parity": "FINISHED", "summarize": "FINISHED",
              "report": "FINISHED"},
    }
    assert (project / "data" / "report.json").read_text().count('"count": 10') == 1


@pytest.fixture
def tracked_relay(mlflow_server, workspace, env):
    experiment = f"relay-{uuid.uuid4().hex[:8]}"
    project = relay_project(workspace, package="relay_tracked")
    _server_env(project, mlflow_server, experiment,
                airflow={"default": {"retries": 1, "retry_delay": "1s"}})
    _export(project, workspace / "dags", env)
    return project, workspace / "dags" / "relay_tracked.py", experiment


def test_retried_node_has_two_children_and_parent_finishes(airflow_db, mlflow_server,
                                                           tracked_relay, tmp_path, env):
    project, dag_file, experiment = tracked_relay
    result = run_dag(dag_file, "relay_tracked",
                     conf={"fail_once_marker": str(tmp_path / "failed-once")}, env=env)
    assert result.state == "success", result

    (parent,), children = _runs(mlflow_server, experiment)
    assert parent.info.status == "FINISHED"
    report = sorted((c for c in children if c.data.tags["kedro.node"] == "report"),
                    key=lambda c: int(c.data.tags["airflow.try_number"]))
    assert [c.info.status for c in report] == ["FAILED", "FINISHED"]
    assert [c.data.tags["airflow.try_number"] for c in report] == ["1", "2"]
    assert len(children) == 5


def test_failing_node_fails_the_parent_and_is_named(airflow_db, mlflow_server, tracked_relay, env):
    project, dag_file, experiment = tracked_relay
    result = run_dag(dag_file, "relay_tracked", conf={"fail": True}, env=env)
    assert result.state == "failed"
    assert result.tasks["report"] == "upstream_failed"

    (parent,), children = _runs(mlflow_server, experiment)
    assert parent.info.status == "FAILED"
    assert parent.data.tags["kedro.failed_nodes"] == "summarize"
    summarize = [c for c in children if c.data.tags["kedro.node"] == "summarize"]
    assert [c.info.status for c in summarize] == ["FAILED", "FAILED"]  # one per try (retries: 1)
    assert not [c for c in children if c.data.tags["kedro.node"] == "report"]


def _task_test(dag_id: str, task_id: str, run_id: str, env: dict | None) -> None:
    """Run one task of an existing DAG run again, as a cleared task is rerun (state recorded)."""
    done = subprocess.run(
        [sys.executable, "-m", "airflow", "tasks", "test", dag_id, task_id, run_id],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def test_cleared_failed_task_rerun_finishes_the_same_parent(airflow_db, mlflow_server,
                                                            tracked_relay, tmp_path, env):
    project, dag_file, experiment = tracked_relay
    marker = tmp_path / "broken"
    marker.touch()
    result = run_dag(dag_file, "relay_tracked", conf={"fail_marker": str(marker)}, env=env)
    assert result.tasks["report"] == "failed"
    (parent,), _ = _runs(mlflow_server, experiment)
    assert parent.info.status == "FAILED" and parent.data.tags["kedro.failed_nodes"] == "report"

    marker.unlink()  # the cause is fixed; the failed task and the end task run again
    _task_test("relay_tracked", "report", result.run_id, env)
    _task_test("relay_tracked", "kedro_run_end", result.run_id, env)
    (again,), children = _runs(mlflow_server, experiment)
    assert again.info.run_id == parent.info.run_id
    assert again.info.status == "FINISHED"
    assert "kedro.failed_nodes" not in again.data.tags
    reports = [c.info.status for c in children if c.data.tags["kedro.node"] == "report"]
    assert sorted(reports) == ["FAILED", "FAILED", "FINISHED"]  # two tries, then the rerun


def test_start_task_run_twice_reuses_the_parent(airflow_db, mlflow_server, tracked_relay, env):
    project, dag_file, experiment = tracked_relay
    result = run_dag(dag_file, "relay_tracked", env=env)
    assert result.state == "success", result
    again = subprocess.run(
        [sys.executable, "-m", "airflow", "tasks", "test", "relay_tracked", "kedro_run_start",
         result.run_id],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    parents, _ = _runs(mlflow_server, experiment)
    assert len(parents) == 1
    assert parents[0].data.tags["airflow.run_id"] == result.run_id


def test_kedro_mlflow_project_logs_into_the_shared_run(airflow_db, mlflow_server, workspace):
    """kedro-mlflow's own config, hook and datasets: one parent, never ended by its hook."""
    env = with_kedro_mlflow(True)
    experiment = f"kmlflow-{uuid.uuid4().hex[:8]}"
    project = kedro_mlflow_project(workspace)
    (project / "conf" / "server").mkdir()
    run_kedro(project, "mlflow", "init", "--env", "server", env=env)
    config_file = project / "conf" / "server" / "mlflow.yml"
    config = yaml.safe_load(config_file.read_text())
    config["server"]["mlflow_tracking_uri"] = mlflow_server
    config["server"]["credentials"] = "mlflow_creds"
    config["tracking"]["experiment"]["name"] = experiment
    config_file.write_text(yaml.safe_dump(config))
    (project / "conf" / "server" / "credentials.yml").write_text(
        yaml.safe_dump({"mlflow_creds": {"AKM_PROBE": "from-credentials"}}))
    exported = run_kedro(project, "airflow", "export", "-e", "server", "--target-dir",
                         str(workspace / "dags"),
                         env={k: v for k, v in env.items() if k != "MLFLOW_TRACKING_URI"})
    assert "kedro-mlflow is installed" not in exported.stderr, exported.stderr  # mlflow.yml is there
    result = run_dag(workspace / "dags" / "kmlflow.py", "kmlflow", env=env)
    assert result.state == "success", result

    (parent,), children = _runs(mlflow_server, experiment)
    assert parent.info.status == "FINISHED"
    # kedro-mlflow's tags describe the DAG run (the pipeline), not the last node task's session
    assert parent.data.tags["kedro_command"] == "kedro run --pipeline=__default__"
    assert "node_names" not in parent.data.tags
    assert parent.data.tags["kedro.env"] == "server"
    assert sorted(c.data.tags["kedro.node"] for c in children) == ["fit", "score"]
    assert {c.info.status for c in children} == {"FINISHED"}
    (slope,) = [value for key, value in parent.data.metrics.items() if key.endswith("slope")]
    assert slope == pytest.approx(2.0)
    client = _client(mlflow_server)
    # MLflow 3 logs a model as a LoggedModel whose source run is the run active at save: the parent
    (model,) = client.search_logged_models(experiment_ids=[parent.info.experiment_id])
    assert model.source_run_id == parent.info.run_id
    assert "notes.txt" in {a.path for a in client.list_artifacts(parent.info.run_id)}
    notes = Path(client.download_artifacts(parent.info.run_id, "notes.txt"))
    assert notes.read_text() == "slope=2.000 exported=True"


def test_kedro_mlflow_without_mlflow_yml_fails_once_at_the_start(airflow_db, workspace):
    """kedro-mlflow's hook cannot track without mlflow.yml (MLflow 3 refuses its default
    ./mlruns): the start task fails, saying what to fix, and no node task runs."""
    env = {**with_kedro_mlflow(True)}
    env.pop("MLFLOW_TRACKING_URI", None)
    project = kedro_mlflow_project(workspace)
    exported = run_kedro(project, "airflow", "export", "--target-dir", str(workspace / "dags"),
                         env=env)
    assert "kedro-mlflow is installed and its hook is active" in exported.stderr, exported.stderr
    assert "has no mlflow.yml: every DAG run's start task will fail" in exported.stderr
    result = run_dag(workspace / "dags" / "kmlflow.py", "kmlflow", env=env)
    assert result.state == "failed"
    assert result.tasks["kedro_run_start"] == "failed"
    assert {result.tasks[node] for node in ("fit", "score")} == {"upstream_failed"}
    assert "kedro-mlflow is installed and its hook is active" in result.output
    assert "kedro mlflow init" in result.output
