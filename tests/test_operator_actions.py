"""Airflow's own buttons, pressed through the REST calls the UI makes, on the fault deployment:
"Clear" of only the failed tasks, one task of a green run cleared with and without its
downstream tasks, runs and tasks marked success or failed, an end task killed on every try, a
running run's deletion. None of them runs the start and end tasks the usual way; each must end
with the MLflow parent saying what the DAG run says (polled for at most 30 s after the run
ended), the right tags, a child run per try, and the promotion gate deciding on the latest model.
"""

from __future__ import annotations

import urllib.error

import pytest
import yaml
from fault_deployment import (
    FOREST_TRAIN,
    GROUP,
    REGISTERED,
    TRAINING,
    hand_made_champion,
    new_run_id,
    try_number,
)

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.xdist_group(GROUP)]

LOGISTIC_EVALUATE = "logistic_regression.evaluate_model"
FOREST_EVALUATE = "random_forest.evaluate_model"
GATE = "kedro_promote_model"
END = "kedro_run_end"
WORSE_FOREST = {"estimator": "random_forest", "n_estimators": 1, "max_depth": 1,
                "random_state": 42}


def _failing_run(faulty, name: str) -> tuple[str, object]:
    """A run whose logistic evaluation raises on every try it gets (so the gate never runs):
    failed in Airflow, its parent FAILED naming that node. The fault only lists those tries,
    so what a clear or a mark starts afterwards runs as if the bug had been fixed."""
    run_id = new_run_id(name)
    faulty.faults.add(dag_run=run_id, task=LOGISTIC_EVALUATE, tries=[1, 2, 3, 4],
                      at="before_dataset_saved", dataset="logistic_regression.metrics",
                      action="raise")
    faulty.airflow.trigger(TRAINING, run_id=run_id)
    run = faulty.airflow.wait(TRAINING, run_id)
    assert run["state"] == "failed"
    _, parent = faulty.settled(run_id)
    assert parent.data.tags["kedro.failed_nodes"] == LOGISTIC_EVALUATE
    return run_id, parent


def test_clear_only_failed_after_a_fix_finishes_the_parent(faulty):
    """The UI's default Clear of a failed run reruns only the failed and upstream-failed tasks:
    not the start and end tasks, which had succeeded. The run goes green and so does the parent,
    without the earlier failure and with the run's new clear number; the gate, which had not
    run, decides. Deleting the run while it reruns is refused by Airflow (409): nothing lost."""
    run_id, failed = _failing_run(faulty, "only-failed")
    go = faulty.faults.folder / f"{run_id}.go"
    parked = faulty.faults.add(dag_run=run_id, task=LOGISTIC_EVALUATE, tries=[5],
                               at="before_dataset_saved", dataset="logistic_regression.metrics",
                               action="wait", go=str(go))
    cleared = faulty.airflow.clear_tasks(TRAINING, run_id)  # only_failed: the API's default
    assert "kedro_run_start" not in cleared and END not in cleared
    assert {LOGISTIC_EVALUATE, GATE} <= set(cleared)
    try:
        faulty.faults.wait_fired(parked)
        run, rerunning = faulty.settled(run_id)  # RUNNING again: the start task did not run
        assert (run["state"], rerunning.info.status) == ("running", "RUNNING")
        assert rerunning.info.run_id == failed.info.run_id
        with pytest.raises(urllib.error.HTTPError) as refused:
            faulty.airflow.delete_run(TRAINING, run_id)
        assert refused.value.code == 409
    finally:
        go.touch()

    run = faulty.airflow.wait(TRAINING, run_id)
    assert run["state"] == "success"
    _, parent = faulty.settled(run_id)
    assert parent.info.status == "FINISHED"
    assert "kedro.failed_nodes" not in parent.data.tags
    assert parent.data.tags["airflow.clear_number"] == "1"  # cleared once
    assert parent.data.tags["promotion.decision"] in ("promoted", "not_promoted")
    tries = faulty.children(parent, LOGISTIC_EVALUATE)
    assert [c.info.status for c in tries] == ["FAILED"] * 4 + ["FINISHED"]


def test_tasks_marked_by_hand_settle_the_parent(faulty):
    """Marking the failed node success lets Airflow rerun what it blocked (the gate): the run
    and the parent end green. Marking a node of the green run failed then leaves the parent
    saying whatever Airflow says of the run."""
    run_id, _ = _failing_run(faulty, "marked-task")
    faulty.airflow.mark_task(TRAINING, run_id, LOGISTIC_EVALUATE, "success")
    faulty.airflow.wait_for_task(TRAINING, run_id, GATE, {"success", "failed"})
    run = faulty.airflow.wait(TRAINING, run_id)
    assert run["state"] == "success"
    _, parent = faulty.settled(run_id)
    assert "kedro.failed_nodes" not in parent.data.tags

    faulty.airflow.mark_task(TRAINING, run_id, FOREST_TRAIN, "failed")
    run, parent = faulty.settled(run_id)
    if run["state"] == "failed":
        assert FOREST_TRAIN in parent.data.tags["kedro.failed_nodes"].split(",")


@pytest.fixture(scope="module")
def green_run(faulty):
    """A run whose end task is SIGKILLed on every try: Airflow still ends it green (a teardown
    does not decide the run's state), and the parent must follow without the end task."""
    run_id = new_run_id("end-killed")
    fault = faulty.faults.add(dag_run=run_id, task=END, tries=[1, 2, 3, 4],
                              at="settings_loaded", action="kill_self")
    faulty.airflow.trigger(TRAINING, run_id=run_id)
    run = faulty.airflow.wait(TRAINING, run_id)
    tasks = faulty.airflow.task_instances(TRAINING, run_id)
    assert run["state"] == "success", [(t["task_id"], t["state"]) for t in tasks]
    faulty.airflow.wait_for_task(TRAINING, run_id, END, {"failed"})
    assert faulty.faults.fired(fault) == [1, 2, 3, 4]
    return run_id


def test_end_task_killed_on_every_try_the_parent_still_finishes(faulty, green_run):
    _, parent = faulty.settled(green_run)
    assert parent.info.status == "FINISHED"
    assert "kedro.failed_nodes" not in parent.data.tags
    assert {c.info.status for c in faulty.children(parent)} == {"FINISHED"}


def test_one_task_of_a_green_run_cleared_alone_reruns_from_the_kept_data(faulty, green_run):
    """The UI's Clear of one task, without its downstream: its inputs (the run's intermediate
    data, kept after success) are still there, so it retrains; a child per try."""
    cleared = faulty.airflow.clear_tasks(TRAINING, green_run, [FOREST_TRAIN], only_failed=False)
    assert FOREST_TRAIN in cleared and FOREST_EVALUATE not in cleared
    faulty.airflow.wait_for_task(TRAINING, green_run, FOREST_TRAIN, {"success", "failed"})
    run = faulty.airflow.wait(TRAINING, green_run)
    tasks = faulty.airflow.task_instances(TRAINING, green_run)
    assert run["state"] == "success", [(t["task_id"], t["state"]) for t in tasks]
    assert try_number(tasks, FOREST_TRAIN) == 2
    _, parent = faulty.settled(green_run)
    assert [c.info.status for c in faulty.children(parent, FOREST_TRAIN)] == ["FINISHED"] * 2


def test_a_cleared_train_task_retrains_and_the_gate_decides_on_the_new_model(faulty, green_run):
    """Cleared with its downstream tasks, train -> evaluate -> gate rerun on the model the
    project's parameters give now. Against a champion of accuracy 0.8 held before the run, the
    configured forest beats it and the alias moves to it; a depth-1 single tree does not, and
    the alias stays with the champion the run was judged against, never on the worse model."""
    client = faulty.client
    champion = hand_made_champion(client, accuracy=0.8)
    params_file = faulty.project / "conf" / "base" / "parameters_model_training.yml"
    configured = params_file.read_text()

    parent = _retrain(faulty, green_run)
    assert parent.data.tags["promotion.decision"] == "promoted", parent.data.tags
    assert parent.data.tags["promotion.champion_version"] == champion
    better = parent.data.tags["promotion.model_version"]
    assert client.get_model_version_by_alias(REGISTERED, "champion").version == better

    params = yaml.safe_load(configured)
    params["random_forest"]["model_options"] = WORSE_FOREST
    params_file.write_text(yaml.safe_dump(params))
    try:
        parent = _retrain(faulty, green_run)
    finally:
        params_file.write_text(configured)
    assert parent.data.tags["promotion.decision"] == "not_promoted", parent.data.tags
    assert parent.data.tags["promotion.champion_version"] == champion
    worse = parent.data.tags["promotion.model_version"]
    assert worse != better
    assert client.get_model_version_by_alias(REGISTERED, "champion").version == champion
    tries = faulty.children(parent, FOREST_TRAIN)
    assert faulty.promoted_model_id(parent) == faulty.model_of_try(parent, tries[-1])


def test_a_run_marked_failed_then_success_settles_the_parent_each_time(faulty, green_run):
    faulty.airflow.mark_run(TRAINING, green_run, "failed")
    run, parent = faulty.settled(green_run)
    assert (run["state"], parent.info.status) == ("failed", "FAILED")
    faulty.airflow.mark_run(TRAINING, green_run, "success")
    run, parent = faulty.settled(green_run)
    assert (run["state"], parent.info.status) == ("success", "FINISHED")
    assert "kedro.failed_nodes" not in parent.data.tags


def test_the_whole_green_run_cleared_reruns_every_task_under_the_same_parent(faulty, green_run):
    """The UI's Clear of a whole finished run: every task reruns (the model is saved again under
    the run's version), the parent is reused, RUNNING while it reruns and without the earlier
    attempt's verdict, and its final status and promotion tags describe the rerun."""
    tries = try_number(faulty.airflow.task_instances(TRAINING, green_run), FOREST_TRAIN)
    (first,) = faulty.parents(green_run)
    first_version = first.data.tags["promotion.model_version"]
    faulty.airflow.clear_run(TRAINING, green_run)
    faulty.airflow.wait_for_task(TRAINING, green_run, "kedro_run_start", {"success"})
    (rerunning,) = faulty.parents(green_run)
    assert (rerunning.info.run_id, rerunning.info.status) == (first.info.run_id, "RUNNING")
    assert not [k for k in rerunning.data.tags if k.startswith("promotion.")]
    _, tasks = faulty.succeed(green_run)
    assert try_number(tasks, FOREST_TRAIN) == tries + 1
    (parent,) = faulty.parents(green_run)
    assert parent.data.tags["promotion.model_version"] != first_version
    rerun = faulty.children(parent, FOREST_TRAIN)[-1]
    assert faulty.promoted_model_id(parent) == faulty.model_of_try(parent, rerun)
    if parent.data.tags["promotion.decision"] == "promoted":
        champion = faulty.client.get_model_version_by_alias(REGISTERED, "champion")
        assert champion.version == parent.data.tags["promotion.model_version"]
    assert len(faulty.model_versions_on_s3(parent)) == 1  # the run's one version, saved again


def _retrain(faulty, run_id: str):
    """Clear the forest's training and what follows it; the settled parent afterwards."""
    cleared = faulty.airflow.clear_tasks(TRAINING, run_id, [FOREST_TRAIN], only_failed=False,
                                         include_downstream=True)
    assert {FOREST_TRAIN, FOREST_EVALUATE, GATE} <= set(cleared)
    faulty.airflow.wait_for_task(TRAINING, run_id, GATE, {"success", "failed"})
    run = faulty.airflow.wait(TRAINING, run_id)
    assert run["state"] == "success"
    _, parent = faulty.settled(run_id)
    return parent
