"""The exported DAGs under a real Airflow deployment: scheduler, dag-processor, api-server on a
PostgreSQL metadata DB, every task its own process, runs triggered through the REST API, by the
clock and by assets; a real ``mlflow server`` and an S3 endpoint on loopback."""

from __future__ import annotations

import json
import re
import urllib.error
import uuid
from datetime import datetime

import pytest
from airflow_cluster import AirflowCluster, airflow_cluster
from conftest import copy_example, run_kedro, running_mlflow_server
from kedro_projects import planted_project, relay_project, where_project
from secret_scan import assert_nowhere, file_contents, mlflow_runs

from airflow_kedro_mlflow.core.ids import storage_key

# One worker runs this module, on its one deployment (scripts/test.sh: --dist loadgroup)
pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.xdist_group("deployments")]
BUCKET = "wine-classifier"
TRAINING = "wine_classifier_s3"
INFERENCE = "wine_classifier__inference_s3"
MINUTELY = "minutely"
WHERE = "where"
PLANTED = "planted"
DOTS = "dots"


@pytest.fixture(scope="session")
def planted_secrets() -> dict[str, str]:
    """Credentials planted in the `planted` project's configuration (kedro_projects)."""
    return {name: f"planted{name.replace('_', '')}{uuid.uuid4().hex}"
            for name in ("mlflow_password", "catalog_token", "webhook", "sas_signature")}


@pytest.fixture(scope="session")  # once per worker: never set up twice
def mlflow_server(tmp_path_factory, s3_server):
    """This module's own MLflow server: its registry starts empty, so the first training run's
    model becomes the champion, which is what starts the inference DAG. It proxies artifacts to
    S3 with keys of its own, as the example's `s3` env expects: the workers get none."""
    env = {"AWS_ACCESS_KEY_ID": "mlflow-server-key", "AWS_SECRET_ACCESS_KEY": "mlflow-server-secret",
           "MLFLOW_S3_ENDPOINT_URL": s3_server.url}
    with running_mlflow_server(tmp_path_factory.mktemp("scheduler-mlflow"),
                               f"s3://{BUCKET}/mlflow", env) as server:
        yield server.url


@pytest.fixture(scope="session")  # once per worker: never set up twice
def deployment(tmp_path_factory, s3_server, mlflow_server, node_python, planted_secrets):
    """The example in its `s3` env (training + inference DAGs), a small DAG scheduled every
    minute, one whose middle node runs in another virtualenv, one with credentials planted
    in its configuration and one that removes each run's intermediate data at its end,
    exported into one dags/ folder, plus the environment the workers get."""
    root = tmp_path_factory.mktemp("deployment")
    key, secret = f"key{uuid.uuid4().hex}", f"secret{uuid.uuid4().hex}"
    s3_server.ensure_bucket(BUCKET, key, secret)
    project = copy_example(root / "examples" / "wine_classifier")
    run_kedro(project, "airflow", "export", "-e", "s3", "-p", "__default__", "-p", "inference",
              "--target-dir", str(root / "dags"))
    minutely = relay_project(root / "examples", package=MINUTELY, extra_conf={"airflow.yml": {
        "default": {"schedule": "* * * * *", "start_date": [2026, 1, 1], "max_active_runs": 1}}})
    run_kedro(minutely, "airflow", "export", "--target-dir", str(root / "dags"))
    where = where_project(root / "examples", {"mode": "virtualenv", "python": str(node_python)},
                          mlflow_server, WHERE)
    run_kedro(where, "airflow", "export", "--target-dir", str(root / "dags"))
    planted = planted_project(root / "examples", str(node_python), mlflow_server, planted_secrets)
    run_kedro(planted, "airflow", "export", "--target-dir", str(root / "dags"))
    dots = relay_project(root / "examples", package=DOTS, extra_conf={"airflow.yml": {
        "default": {"intermediate_retention": 0}}})  # a run's data is removed at its end
    run_kedro(dots, "airflow", "export", "--target-dir", str(root / "dags"))
    env = {"WINE_S3_KEY": key, "WINE_S3_SECRET": secret, "WINE_S3_ENDPOINT_URL": s3_server.url,
           "MLFLOW_TRACKING_URI": mlflow_server}
    return root, env


def _parents(mlflow_server: str, experiment: str, run_id: str | None = None) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(mlflow_server)
    found = client.get_experiment_by_name(experiment)
    query = "tags.`airflow_kedro_mlflow.role` = 'parent'"
    if run_id is not None:
        query += f" and tags.`airflow.run_id` = '{run_id}'"
    return client.search_runs([found.experiment_id], query) if found else []


def _children(mlflow_server: str, parent) -> list:
    from mlflow.tracking import MlflowClient

    return MlflowClient(mlflow_server).search_runs(
        [parent.info.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")


def _assert_one_finished_training_run(airflow: AirflowCluster, run_id: str, mlflow_server: str,
                                      s3_server) -> None:
    """The acceptance of one training DAG run, whoever executed its tasks."""
    run = airflow.wait(TRAINING, run_id)
    tasks = airflow.task_instances(TRAINING, run_id)
    assert run["state"] == "success", [(t["task_id"], t["state"]) for t in tasks]
    assert {t["state"] for t in tasks} == {"success"} and len(tasks) == 10
    (parent,) = _parents(mlflow_server, TRAINING, run_id)
    assert parent.info.status == "FINISHED"
    children = _children(mlflow_server, parent)
    assert len(children) == 7 and {c.info.status for c in children} == {"FINISHED"}
    keys = s3_server.keys(BUCKET, "mlflow/")  # proxied by the MLflow server: <experiment>/<run>
    assert (f"mlflow/{parent.info.experiment_id}/{parent.info.run_id}/artifacts/random_forest/"
            "confusion_matrix.png") in keys
    # kept for the retention (any task can be cleared), with the run's end record
    kept = s3_server.keys(BUCKET, f"airflow-intermediate/{TRAINING}/{storage_key(run_id)}/")
    assert {k.rsplit("/", 1)[-1] for k in kept} >= {"X_train.pickle", "_dag_run_end.json"}


# Workers that preload Kedro and the example's dependencies once, as the README advises:
# LocalExecutor workers from a forkserver, Celery workers through the Celery config.
PRELOADED = "Worker preloaded by airflow_kedro_mlflow.preload: kedro,wine_classifier"
LOCAL_PRELOAD = {
    "AIRFLOW__CORE__MP_START_METHOD": "forkserver",
    "AIRFLOW__CORE__MP_FORKSERVER_PRELOAD": "airflow,airflow.executors.local_executor,"
                                            "airflow_kedro_mlflow.preload",
}
CELERY_PRELOAD = {
    "AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS": "airflow_kedro_mlflow.celery_config.CELERY_CONFIG",
}


def _preload(root, env: dict, executor_env: dict) -> dict:
    return {**env, **executor_env,
            "AIRFLOW__KEDRO_MLFLOW__PRELOAD_PROJECTS": str(root / "examples" / "wine_classifier")}


def _lineage_events(root) -> dict[str, str]:
    """OpenLineage's file transport, where the LocalExecutor deployment sends its events."""
    return {"AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
                {"type": "file", "log_file_path": str(root / "openlineage.jsonl"), "append": True}),
            "AIRFLOW__OPENLINEAGE__NAMESPACE": "akm-deployment"}


def _task_logs(airflow: AirflowCluster, dag_id: str, run_id: str) -> list[str]:
    folder = airflow.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}"
    return [path.read_text() for path in folder.rglob("*.log")]


@pytest.fixture(scope="session")  # once per worker: never set up twice
def local_airflow(deployment):
    root, env = deployment
    with airflow_cluster(root / "local", root / "dags", "LocalExecutor",
                         extra_env={**_preload(root, env, LOCAL_PRELOAD),
                                    **_lineage_events(root),
                                    # run ids with ".." too (Airflow refuses them by default)
                                    "AIRFLOW__CORE__ALLOW_DOUBLE_DOT_IN_IDS": "True"}) as airflow:
        yield airflow


def test_local_executor_run_is_one_mlflow_run_and_triggers_inference(
        deployment, local_airflow, s3_server, mlflow_server):
    run_id = local_airflow.trigger(TRAINING)
    _assert_one_finished_training_run(local_airflow, run_id, mlflow_server, s3_server)
    tasks = local_airflow.task_instances(TRAINING, run_id)
    assert len({t["pid"] for t in tasks}) == len(tasks)  # each task ran in its own process
    logs = _task_logs(local_airflow, TRAINING, run_id)
    assert len(logs) == len(tasks) and all(PRELOADED in log for log in logs)
    (parent,) = _parents(mlflow_server, TRAINING, run_id)
    assert parent.data.tags["promotion.decision"] == "promoted"  # the first model: no champion yet

    # The training run made a new champion, an Airflow Asset: the inference DAG runs on it.
    (inference,) = local_airflow.wait_for_runs(INFERENCE, 1, run_type="asset_triggered")
    assert inference["state"] == "success"
    assert s3_server.keys(BUCKET, "data/07_model_output/") == [
        "data/07_model_output/wine_predictions.csv"]

    # The S3 credentials reached every task, and nothing kept them: not the task logs, not the
    # metadata DB (XCom, rendered fields, run conf), not the DAG files, not MLflow.
    root, env = deployment
    task_logs = list((local_airflow.home / "logs").rglob(f"dag_id={TRAINING}/**/*.log"))
    assert len(task_logs) >= len(tasks)
    places = {"metadata DB": local_airflow.dump_metadata_db(),
              **file_contents(local_airflow.home, root / "dags"),
              **mlflow_runs(mlflow_server, TRAINING)}  # both DAGs log to this experiment
    assert run_id.encode() in places["metadata DB"]  # the dump holds this run's rows
    assert_nowhere((env["WINE_S3_KEY"], env["WINE_S3_SECRET"]), places)


def test_a_node_routed_to_a_virtualenv_runs_there_in_the_dag_runs_mlflow_run(
        deployment, local_airflow, mlflow_server, node_python):
    run_id = local_airflow.trigger(WHERE)
    run = local_airflow.wait(WHERE, run_id)
    tasks = local_airflow.task_instances(WHERE, run_id)
    assert run["state"] == "success", [(t["task_id"], t["state"]) for t in tasks]
    root, _ = deployment
    report = json.loads((root / "examples" / WHERE / "data" / "report.json").read_text())
    assert report["ran_in"] == str(node_python.parent.parent)  # the other environment's prefix
    assert report["reporter"] != report["ran_in"]  # the worker's own
    (parent,) = _parents(mlflow_server, WHERE, run_id)
    assert parent.info.status == "FINISHED"
    children = _children(mlflow_server, parent)
    assert sorted(c.data.tags["kedro.node"] for c in children) == ["locate", "make_numbers",
                                                                   "report"]
    assert {c.info.status for c in children} == {"FINISHED"}
    (log,) = [text for text in _task_logs(local_airflow, WHERE, run_id) if "Node runner:" in text]
    assert str(node_python) in log


def _rest_view_of_run(airflow: AirflowCluster, dag_id: str, run_id: str) -> dict[str, bytes]:
    """What the REST API (and so the UI) serves of a run: every XCom value and extra link."""
    found: dict[str, bytes] = {}
    for task in airflow.task_instances(dag_id, run_id):
        base = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task['task_id']}"
        for entry in airflow.api("GET", f"{base}/xcomEntries")["xcom_entries"]:
            value = airflow.api("GET", f"{base}/xcomEntries/{entry['key']}")
            found[f"XCom {task['task_id']}.{entry['key']}"] = json.dumps(value).encode()
        found[f"links of {task['task_id']}"] = json.dumps(airflow.api("GET", f"{base}/links")).encode()
    return found


def test_credentials_planted_in_the_configuration_appear_nowhere(
        deployment, local_airflow, mlflow_server, planted_secrets):
    """A tracking URI with user-info, a catalog path with user-info, a webhook URL and an
    Azure SAS URL in credentials.yml: used by a run, kept by nothing Airflow or MLflow shows.
    (A token in the tracking URI's query is checked where it can be: MLflow's client appends
    its API paths to the URI, so no server is reachable through one; tests/test_url_secrets.)"""
    root, _ = deployment
    run_id = local_airflow.trigger(PLANTED)
    run = local_airflow.wait(PLANTED, run_id)
    tasks = local_airflow.task_instances(PLANTED, run_id)
    assert run["state"] == "success", [(t["task_id"], t["state"]) for t in tasks]

    rest = _rest_view_of_run(local_airflow, PLANTED, run_id)
    database = local_airflow.dump_metadata_db()
    lineage = (root / "openlineage.jsonl").read_bytes()
    where = json.loads((root / "examples" / PLANTED / "data" / "where.json").read_text())
    places = {**rest, "metadata DB": database, "lineage events": lineage,
              "the virtualenv runner's environment": where["environ"].encode(),
              **file_contents(local_airflow.home, root / "dags"),  # every log, the DAG files
              **mlflow_runs(mlflow_server, PLANTED)}
    # Each place holds what it should: the scan looks where the values would be.
    (parent,) = _parents(mlflow_server, PLANTED, run_id)
    assert parent.info.status == "FINISHED" and len(_children(mlflow_server, parent)) == 3
    link = f"{mlflow_server}/#/experiments/{parent.info.experiment_id}/runs/".encode()
    assert link in rest["XCom kedro_run_start.mlflow_run_url"]
    assert b"https://127.0.0.1:9/notices/notice.json" in database  # the catalog path's Asset
    assert f'"{PLANTED}.notify"'.encode() in lineage and run_id.encode() in database
    assert "PATH=" in where["environ"]
    notify_log = "".join(_task_logs(local_airflow, PLANTED, run_id))
    assert "Posting '5 numbers' to ***" in notify_log  # what the dataset logged, masked
    assert_nowhere(tuple(planted_secrets.values()), places)


def test_run_ids_made_of_dots_reach_no_other_runs_data(deployment, local_airflow):
    """Airflow accepts a triggered run id of `.` (and `..` where `allow_double_dot_in_ids` is
    set, as here). As storage keys they would be the DAG's folder and the store's root, and
    the run's clean-up at its end would remove every other run's data. Each gets a key of its
    own below the DAG's folder; the data of runs in progress of this DAG and of another DAG
    stays as it was.

    Airflow 3.3.2 itself cannot finish such a run: the Task SDK puts the run id unescaped in
    the path of its XCom requests, which then resolve to another URL (a 307 for `.`), so any
    task that pushes or reads an XCom fails. The test asserts what holds whatever Airflow
    does with them next."""
    root, _ = deployment
    store = root / "examples" / DOTS / "data" / "airflow_intermediate"
    in_progress = [store / DOTS / "in-progress" / "numbers.pickle",
                   store / "another_dag" / "in-progress" / "numbers.pickle"]
    for path in in_progress:
        path.parent.mkdir(parents=True)
        path.write_bytes(b"another run's data")
    for run_id in (".", ".."):
        local_airflow.trigger(DOTS, run_id=run_id)
        local_airflow.wait(DOTS, run_id)
        start_log = "".join(_task_logs(local_airflow, DOTS, run_id))
        (folder,) = set(re.findall(r"intermediate store (\S+?)[\\\"]", start_log))
        assert folder.rsplit("/", 1) == [f"{store}/{DOTS}", storage_key(run_id)]
        assert not storage_key(run_id).startswith(".")  # one new segment below the DAG's folder
    assert [path.read_bytes() for path in in_progress] == [b"another run's data"] * 2
    assert {p.name for p in (store / DOTS).iterdir()} <= {
        "in-progress", storage_key("."), storage_key("..")}
    # A "/" in a run id is refused by Airflow's default `allowed_run_id_pattern`; its storage
    # key stays one segment too (tests/test_storage_keys.py).
    with pytest.raises(urllib.error.HTTPError) as refused:
        local_airflow.trigger(DOTS, run_id="a/../b")
    assert refused.value.code in (400, 422)


def test_three_concurrent_runs_keep_their_own_runs_data_and_models(
        local_airflow, s3_server, mlflow_server):
    run_ids = [local_airflow.trigger(TRAINING, conf={"data_processing": {"split": {
        "random_state": seed}}}) for seed in (1, 2, 3)]
    for run_id in run_ids:
        _assert_one_finished_training_run(local_airflow, run_id, mlflow_server, s3_server)
    parents = [_parents(mlflow_server, TRAINING, run_id)[0] for run_id in run_ids]
    # each run its own save version, params, logged models and registered model version
    assert len({p.data.tags["kedro.save_version"] for p in parents}) == 3
    assert [p.data.params["data_processing.split.random_state"] for p in parents] == ["1", "2", "3"]
    from mlflow.tracking import MlflowClient

    client = MlflowClient(mlflow_server)
    for parent in parents:
        models = client.search_logged_models(
            experiment_ids=[parent.info.experiment_id],
            filter_string=f"source_run_id = '{parent.info.run_id}'")
        assert sorted(m.name for m in models) == ["logistic_regression", "random_forest"]
        (version,) = client.search_model_versions(
            f"name = 'wine_classifier_s3' and run_id = '{parent.info.run_id}'")
        assert version.tags["promotion.decision"] == parent.data.tags["promotion.decision"]
    # the three runs overlapped: at most 3 active at once, as max_active_runs says
    runs = [local_airflow.api("GET", f"/dags/{TRAINING}/dagRuns/{_quote(r)}") for r in run_ids]
    starts = [datetime.fromisoformat(r["start_date"]) for r in runs]
    ends = [datetime.fromisoformat(r["end_date"]) for r in runs]
    assert max(starts) < min(ends)


def test_dag_scheduled_every_minute_runs_twice_with_a_parent_run_each(
        local_airflow, mlflow_server):
    runs = local_airflow.wait_for_runs(MINUTELY, 2, run_type="scheduled", timeout=400)
    assert [r["state"] for r in runs] == ["success", "success"]
    assert runs[0]["run_after"] != runs[1]["run_after"]
    parents = {r["dag_run_id"]: _parents(mlflow_server, MINUTELY, r["dag_run_id"]) for r in runs}
    assert all(len(found) == 1 and found[0].info.status == "FINISHED" for found in parents.values())
    local_airflow.api("PATCH", f"/dags/{MINUTELY}", {"is_paused": True})


def test_celery_workers_share_the_branches_of_one_run(deployment, s3_server, mlflow_server):
    root, env = deployment
    with airflow_cluster(root / "celery", root / "dags", "CeleryExecutor",
                         extra_env=_preload(root, env, CELERY_PRELOAD), celery_workers=2) as airflow:
        airflow.wait_for_dag(MINUTELY)
        airflow.api("PATCH", f"/dags/{MINUTELY}", {"is_paused": True})  # not part of this test
        run_id = airflow.trigger(TRAINING)
        _assert_one_finished_training_run(airflow, run_id, mlflow_server, s3_server)
        tasks = {t["task_id"]: t for t in airflow.task_instances(TRAINING, run_id)}
        logs = _task_logs(airflow, TRAINING, run_id)
    assert {t["hostname"] for t in tasks.values()} == {"worker0", "worker1"}
    assert len(logs) == len(tasks) and all(PRELOADED in log for log in logs)
    # The two model branches ran at the same time, one on each worker.
    forest, regression = tasks["random_forest.train_model"], tasks["logistic_regression.train_model"]
    overlapping = [
        (a, b) for a in tasks.values() for b in tasks.values()
        if a["hostname"] != b["hostname"]
        and _start(a) < _end(b) and _start(b) < _end(a)
    ]
    assert overlapping, [(t["task_id"], t["hostname"], t["start_date"], t["end_date"])
                         for t in tasks.values()]
    assert forest["state"] == regression["state"] == "success"


def _start(task: dict) -> datetime:
    return datetime.fromisoformat(task["start_date"])


def _end(task: dict) -> datetime:
    return datetime.fromisoformat(task["end_date"])


def _quote(run_id: str) -> str:
    import urllib.parse

    return urllib.parse.quote(run_id, safe="")
