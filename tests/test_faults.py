"""At-least-once, for real: task processes and their supervisors SIGKILLed, the MLflow server
stopped mid-logging, finished runs cleared, a run id deleted and reused, on one LocalExecutor
deployment (PostgreSQL, scheduler, dag-processor, api-server), with a real ``mlflow server`` and
S3 on loopback. Each DAG run must still end right: succeeded after its retry or clear, one MLflow
parent run with the right status, a child per try (killed tries KILLED), and the promoted model
being the one that the successful try logged.

The faults are injected by a Kedro hook (``fault_injection.py``) added to a copy of the example,
at real lines of the real task processes; see that module.
"""

from __future__ import annotations

import time

import pytest
from airflow_cluster import AirflowCluster
from fault_deployment import (
    FOREST_TRAIN,
    GROUP,
    INFERENCE,
    MODEL_DATASET,
    SPLIT,
    TRAINING,
    WHERE,
    WORSE,
    hand_made_champion,
    new_run_id,
    try_number,
)

# One worker runs the modules of this deployment (scripts/test.sh: --dist loadgroup)
pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.xdist_group(GROUP)]


def _inference_runs(airflow: AirflowCluster) -> list[dict]:
    return [r for r in airflow.dag_runs(INFERENCE) if r["run_type"] == "asset_triggered"]


def _retry_owns_the_output(faulty, run_id: str, fault: dict) -> tuple:
    """Trigger ``run_id``, whose train_model try 1 ``fault`` kills after its save: the run
    succeeds on try 2, try 1's child is KILLED, the promoted model is try 2's, and S3 holds the
    run's one version of the model. Returns (parent, killed child, retried child)."""
    faulty.airflow.trigger(TRAINING, run_id=run_id)
    _, tasks = faulty.succeed(run_id)
    assert faulty.faults.fired(fault) == [1]
    assert try_number(tasks, FOREST_TRAIN) == 2
    (parent,) = faulty.parents(run_id)
    killed, retried = faulty.children(parent, FOREST_TRAIN)
    assert (killed.info.status, retried.info.status) == ("KILLED", "FINISHED")
    assert faulty.promoted_model_id(parent) == faulty.model_of_try(parent, retried)
    assert len(faulty.model_versions_on_s3(parent)) == 1  # the run's one version, saved again
    return parent, killed, retried


def test_node_killed_after_its_versioned_save_retries_and_promotes_the_retry_model(faulty):
    """SIGKILL of train_model right after it saved model.pkl and logged the model: the retry
    saves model.pkl again under the run's version, and its model, not the killed try's, is the
    one registered and promoted. The promotion triggers the inference DAG exactly once."""
    run_id = new_run_id("killed-node")
    fault = faulty.faults.add(dag_run=run_id, task=FOREST_TRAIN, tries=[1],
                              at="after_dataset_saved", dataset=MODEL_DATASET, action="kill_self")
    parent, killed, retried = _retry_owns_the_output(faulty, run_id, fault)
    assert parent.data.tags["promotion.decision"] == "promoted"
    assert faulty.promoted_model_id(parent) != faulty.model_of_try(parent, killed)

    # A new champion: the inference DAG, scheduled on the alias's Asset, runs once.
    (inference,) = faulty.airflow.wait_for_runs(INFERENCE, 1, run_type="asset_triggered")
    assert inference["state"] == "success"


def test_worker_killed_under_a_task_the_orphan_stops_and_the_retry_owns_the_output(faulty):
    """SIGKILL of the supervisor (the worker process) of train_model after its save: the orphaned
    task process stops instead of reporting, Airflow notices the dead try after its heartbeat
    timeout and retries; the retry's model is the one promoted."""
    run_id = new_run_id("killed-worker")
    fault = faulty.faults.add(dag_run=run_id, task=FOREST_TRAIN, tries=[1],
                              at="after_dataset_saved", dataset=MODEL_DATASET,
                              action="kill_supervisor")
    _retry_owns_the_output(faulty, run_id, fault)


def test_an_orphan_inside_a_save_ends_it_before_the_retry_saves(faulty):
    """split_data's try 1 loses its supervisor while inside its save of X_train (a long save: it
    waits) and marks the frame it saves. Airflow retries the task; the retry waits for the
    orphan's save to end before it saves its own, so the X_train that stays, and that the
    downstream tasks read, is the retry's."""
    run_id = new_run_id("orphan-in-save")
    go = faulty.faults.folder / f"{run_id}.go"
    fault = faulty.faults.add(dag_run=run_id, task=SPLIT, tries=[1], at="before_dataset_saved",
                              dataset="X_train", action="kill_supervisor_and_wait", go=str(go),
                              plant_column="planted_by_the_orphan")
    faulty.airflow.trigger(TRAINING, run_id=run_id)
    try:
        faulty.faults.wait_fired(fault)
        log = (faulty.airflow.home / "logs" / f"dag_id={TRAINING}" / f"run_id={run_id}"
               / f"task_id={SPLIT}" / "attempt=2.log")
        deadline = time.monotonic() + 300
        while "Waiting for try 1 of this task" not in (log.read_text() if log.exists() else ""):
            assert time.monotonic() < deadline, "the retry did not wait for the orphan's save"
            time.sleep(1)
    finally:
        go.touch()
    _, tasks = faulty.succeed(run_id)
    assert try_number(tasks, SPLIT) == 2
    assert "planted_by_the_orphan" not in faulty.intermediate(run_id, "X_train").columns


def test_mlflow_down_while_logging_the_model_then_back(faulty):
    """The MLflow server stops while train_model logs its model, for longer than the client
    retries: that try fails with MLflow's error; once the server is back, a retry succeeds."""
    run_id = new_run_id("mlflow-down")
    go = faulty.faults.folder / f"{run_id}.go"
    fault = faulty.faults.add(dag_run=run_id, task=FOREST_TRAIN, tries=[1],
                              at="before_dataset_saved", dataset=MODEL_DATASET, action="wait",
                              go=str(go))
    faulty.airflow.trigger(TRAINING, run_id=run_id)
    faulty.faults.wait_fired(fault)
    # The outage meets the parked task only: the other branch has logged all it logs. (On a busy
    # machine it may still be running, and an outage longer than its retries fails it for good.)
    faulty.airflow.wait_for_task(TRAINING, run_id, "logistic_regression.evaluate_model",
                                 {"success"}, timeout=600)
    faulty.mlflow.stop()
    try:
        go.touch()
        failed = faulty.airflow.wait_for_task(TRAINING, run_id, FOREST_TRAIN,
                                              {"up_for_retry", "failed"}, timeout=180)
    finally:
        faulty.mlflow.start()
    assert failed["try_number"] == 1
    _, tasks = faulty.succeed(run_id)
    (parent,) = faulty.parents(run_id)
    tries = faulty.children(parent, FOREST_TRAIN)
    assert tries[-1].info.status == "FINISHED"
    assert {c.info.status for c in tries[:-1]} <= {"FAILED", "KILLED"}
    assert faulty.promoted_model_id(parent) == faulty.model_of_try(parent, tries[-1])
    assert len(faulty.model_versions_on_s3(parent)) == 1


def test_start_task_killed_after_opening_the_parent(faulty):
    """The start task is SIGKILLed after it created the parent run, on every try: the run fails,
    and the parent is closed FAILED (not left RUNNING). Cleared as the UI clears by default (only
    the failed tasks: the start task and what it blocked, not the end task), the run succeeds
    with the same parent, which the listener settles FINISHED without the end task."""
    run_id = new_run_id("killed-start")
    fault = faulty.faults.add(dag_run=run_id, task="kedro_run_start", tries=[1, 2, 3, 4],
                              at="after_catalog_created", action="kill_self")
    faulty.airflow.trigger(TRAINING, run_id=run_id)
    run = faulty.airflow.wait(TRAINING, run_id)
    assert run["state"] == "failed"
    assert faulty.faults.fired(fault) == [1, 2, 3, 4]
    (parent,) = faulty.parents(run_id)
    assert parent.info.status == "FAILED"
    assert parent.data.tags["kedro.failed_nodes"] == "kedro_run_start"

    cleared = faulty.airflow.clear_tasks(TRAINING, run_id)  # only_failed: the API's default
    assert "kedro_run_start" in cleared and "kedro_run_end" not in cleared
    run = faulty.airflow.wait(TRAINING, run_id)
    assert run["state"] == "success"
    _, again = faulty.settled(run_id)
    assert again.info.run_id == parent.info.run_id
    assert again.info.status == "FINISHED" and "kedro.failed_nodes" not in again.data.tags


def test_run_id_deleted_and_triggered_again_gets_its_own_parent(faulty):
    run_id = new_run_id("reused-id")
    faulty.airflow.trigger(TRAINING, run_id=run_id, conf={"data_processing": {"split": {
        "random_state": 1}}})
    faulty.succeed(run_id)
    faulty.airflow.delete_run(TRAINING, run_id)
    faulty.airflow.trigger(TRAINING, run_id=run_id, conf={"data_processing": {"split": {
        "random_state": 2}}})
    run = faulty.airflow.wait(TRAINING, run_id)
    assert run["state"] == "success"
    old, new = faulty.parents(run_id)
    assert old.info.run_id != new.info.run_id
    assert (old.info.status, new.info.status) == ("FINISHED", "FINISHED")
    assert [p.data.params["data_processing.split.random_state"] for p in (old, new)] == ["1", "2"]
    assert old.data.tags["kedro.save_version"] != new.data.tags["kedro.save_version"]


def test_unpromoted_model_starts_no_inference_run(faulty):
    hand_made_champion(faulty.client, accuracy=0.8)  # whatever ran before on this deployment
    before = len(_inference_runs(faulty.airflow))
    run_id = new_run_id("worse")
    faulty.airflow.trigger(TRAINING, run_id=run_id, conf=WORSE)
    faulty.succeed(run_id)
    (parent,) = faulty.parents(run_id)
    assert parent.data.tags["promotion.decision"] == "not_promoted"
    time.sleep(10)  # the scheduler (a loop every 2 s) would have created a run by now
    assert len(_inference_runs(faulty.airflow)) == before


def test_run_marked_failed_by_hand_fails_its_parent(faulty):
    """A user marks a running DAG run failed in the UI: Airflow kills the running task and lets
    the end task (a teardown) run, which closes the parent FAILED, naming the killed node."""
    run_id = new_run_id("marked-failed")
    go = faulty.faults.folder / f"{run_id}.go"
    fault = faulty.faults.add(dag_run=run_id, task=FOREST_TRAIN, tries=[1],
                              at="before_dataset_saved", dataset=MODEL_DATASET, action="wait",
                              go=str(go))
    faulty.airflow.trigger(TRAINING, run_id=run_id)
    faulty.faults.wait_fired(fault)
    try:
        faulty.airflow.api("PATCH", f"/dags/{TRAINING}/dagRuns/{run_id}", {"state": "failed"})
        end = faulty.airflow.wait_for_task(TRAINING, run_id, "kedro_run_end",
                                           {"success", "failed"}, timeout=180)
    finally:
        go.touch()
    assert end["state"] == "success"
    (parent,) = faulty.parents(run_id)
    assert parent.info.status == "FAILED"
    assert FOREST_TRAIN in parent.data.tags["kedro.failed_nodes"].split(",")
    assert {c.info.status for c in faulty.children(parent)} <= {"FINISHED", "FAILED", "KILLED"}


def test_virtualenv_node_whose_launching_task_is_killed_stops_and_its_retry_succeeds(faulty):
    """The node runner, in the other environment, SIGKILLs its parent (the Airflow task that
    launched it) right after saving its versioned output: the orphaned runner stops before
    reporting, Airflow retries the task, and the retry saves the output again under the run's
    version and finishes the DAG run; MLflow has the killed try's child and the retry's."""
    run_id = new_run_id("killed-launcher")
    fault = faulty.faults.add(dag_run=run_id, task="locate", tries=[1], at="after_dataset_saved",
                              dataset="where", action="kill_supervisor")
    faulty.airflow.trigger(WHERE, run_id=run_id)
    run = faulty.airflow.wait(WHERE, run_id)
    tasks = faulty.airflow.task_instances(WHERE, run_id)
    assert run["state"] == "success", [(t["task_id"], t["state"], t["try_number"]) for t in tasks]
    assert faulty.faults.fired(fault) == [1]
    assert try_number(tasks, "locate") == 2
    client = faulty.client
    experiment = client.get_experiment_by_name(WHERE)
    (parent,) = client.search_runs([experiment.experiment_id],
                                   f"tags.`airflow_kedro_mlflow.role` = 'parent' and "
                                   f"tags.`airflow.run_id` = '{run_id}'")
    assert parent.info.status == "FINISHED"
    killed, retried = faulty.children(parent, "locate")
    assert (killed.info.status, retried.info.status) == ("KILLED", "FINISHED")
