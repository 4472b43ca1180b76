"""Fast tests of how a DAG run's state becomes its MLflow parent's: the verdict, the DAG file it
is read from, and the settling itself on a real MLflow store (no Airflow run)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import REPO

from airflow_kedro_mlflow.core.dag_file import read_exported_dag, step_states
from airflow_kedro_mlflow.core.run_identity import RunIdentity
from airflow_kedro_mlflow.core.run_outcome import ParentOutcome, expected_run_state, parent_outcome

STEPS = {"kedro_run_start": "success", "a.train": "failed", "a.evaluate": "upstream_failed",
         "kedro_promote_model": "upstream_failed"}
OLD_EXPORT = REPO / "tests" / "fixtures" / "wine_classifier_s3_exported_0_1_0.py"


@pytest.mark.parametrize("run_state, steps, status, failed", [
    ("success", STEPS, "FINISHED", ()),  # Airflow's word wins: a run marked success is FINISHED
    ("failed", STEPS, "FAILED", ("a.train",)),  # the failed step, not those it blocked
    ("failed", {"kedro_run_start": "success", "a.train": None}, "FAILED", ("a.train",)),
    ("failed", {"kedro_run_start": "success", "a.train": "success"}, "FAILED", ()),  # marked
    ("running", STEPS, "RUNNING", ()),
    ("queued", STEPS, "RUNNING", ()),
    (None, STEPS, "KILLED", ()),  # deleted
])
def test_the_parent_says_what_the_dag_run_says(run_state, steps, status, failed):
    outcome = parent_outcome(run_state, steps, clear_number=2)
    assert (outcome.status, outcome.failed_steps, outcome.clear_number) == (status, failed, 2)


def test_the_end_task_settles_the_state_its_steps_lead_to():
    assert expected_run_state({"s": "success", "n": "success"}) == "success"
    assert expected_run_state({"s": "success", "n": "skipped"}) == "failed"


@pytest.mark.parametrize("dag_file", [REPO / "dags" / "wine_classifier_s3.py", OLD_EXPORT],
                         ids=["current", "exported-by-0.1.0"])
def test_an_exported_dag_file_is_read_without_running_it(dag_file):
    exported = read_exported_dag(dag_file)
    assert exported is not None
    assert exported.project == {
        "package_name": "wine_classifier", "pipeline": "__default__",
        "path": "../examples/wine_classifier", "env": "s3", "conf_source": None,
        "dag_file": str(dag_file)}
    assert exported.steps["random_forest.train_model"] == "random_forest.train_model"
    assert exported.steps["kedro_run_start"] == "kedro_run_start"
    assert exported.steps["kedro_promote_model"] == "kedro_promote_model"
    assert "kedro_run_end" not in exported.steps  # it closes the run; it is not a step of it
    states = step_states(exported.steps, {"random_forest.train_model": "failed"})
    assert states["random_forest.train_model"] == "failed" and states["kedro_run_start"] is None


def test_grouped_tasks_are_named_by_their_nodes_and_other_files_are_not_exported_dags(tmp_path):
    grouped = tmp_path / "grouped.py"
    grouped.write_text(
        "PROJECT = KedroProject(package_name='p', pipeline='__default__', path='..', "
        "dag_file=__file__, env=None, conf_source=None)\n"
        "tasks['g'] = KedroNodeOperator(task_id='g', node_names=['a', 'b'], project=PROJECT)\n")
    exported = read_exported_dag(grouped)
    assert exported is not None and exported.steps["g"] == "a,b"
    other = tmp_path / "other.py"
    other.write_text("from airflow.sdk import DAG\nwith DAG('x'): pass\n")
    assert read_exported_dag(other) is None
    assert read_exported_dag(tmp_path / "missing.py") is None


def test_settling_a_parent_on_a_real_mlflow_store(tmp_path, monkeypatch):
    """Clear, fail, finish, clear again: the parent follows each outcome, with the failed steps
    and the clear number; a finished outcome closes children left RUNNING."""
    from mlflow.tracking import MlflowClient

    from airflow_kedro_mlflow.config.mlflow import settings_from_dict
    from airflow_kedro_mlflow.runtime.tracking import Tracker

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    settings = settings_from_dict({"server": {"mlflow_tracking_uri": uri},
                                   "tracking": {"experiment": {"name": "e"}}},
                                  project_path=tmp_path, pipeline_name="__default__",
                                  package_name="p", source="conf/base/mlflow.yml")
    tracker = Tracker(settings)
    started = datetime(2026, 12, 1, tzinfo=UTC)
    run = RunIdentity("dag", "manual__1", started, start_date=started)
    parent = tracker.ensure_parent(run, {}, {})
    client = MlflowClient(uri)
    child = client.create_run(parent.info.experiment_id,
                              tags={"mlflow.parentRunId": parent.info.run_id})

    def settle(outcome: ParentOutcome):
        return tracker.settle_parent(run, None, outcome)

    failed = settle(ParentOutcome("FAILED", ("a.train",), 0))
    assert failed.info.status == "FAILED"
    assert failed.data.tags["kedro.failed_nodes"] == "a.train"
    assert client.get_run(child.info.run_id).info.status == "KILLED"

    cleared = RunIdentity("dag", "manual__1", started, start_date=started, clear_number=1)
    rerunning = tracker.settle_parent(cleared, None, ParentOutcome("RUNNING", (), 1))
    assert rerunning.info.status == "RUNNING"
    assert "kedro.failed_nodes" not in rerunning.data.tags
    assert rerunning.data.tags["airflow.clear_number"] == "1"
    finished = tracker.settle_parent(cleared, None, ParentOutcome("FINISHED", (), 1))
    assert finished.info.status == "FINISHED"
    assert finished.info.run_id == parent.info.run_id

    recreated = RunIdentity("dag", "manual__1", started, start_date=datetime.now(UTC))
    assert tracker.settle_parent(recreated, None, ParentOutcome("FAILED", (), 0)) is None
    assert client.get_run(parent.info.run_id).info.status == "FINISHED"  # another run's: untouched


def test_the_settling_process_reads_its_request_and_names_what_it_settled(tmp_path):
    """``python -m airflow_kedro_mlflow.runtime.parent_sync``, as the listener starts it, on a
    project whose DAG run has no parent (tracking on, nothing to settle) and on a bad file."""
    from kedro_projects import relay_project

    relay_project(tmp_path, package="relay")
    dag_file = tmp_path / "dags" / "relay.py"
    dag_file.parent.mkdir()
    dag_file.write_text(
        f"PROJECT = KedroProject(package_name='relay', pipeline='__default__', "
        f"path={str(tmp_path / 'relay')!r}, dag_file=__file__, env=None, conf_source=None)\n")
    (tmp_path / "relay" / "conf" / "base" / "mlflow.yml").write_text(
        f"server:\n  mlflow_tracking_uri: sqlite:///{tmp_path / 'mlflow.db'}\n")
    request = {"dag_file": str(dag_file), "dag_id": "relay", "run_id": "manual__1",
               "run_after": "2026-12-01T00:00:00+00:00", "start_date": None, "end_date": None,
               "clear_number": 0, "state": "success", "task_states": {}}
    done = _settle(request)
    assert done.returncode == 0, done.stderr
    # The last line: Kedro's own logging may print before it
    assert json.loads(done.stdout.splitlines()[-1]) == {"tracked": True, "parent_run_id": None}

    bad = _settle({**request, "dag_file": str(tmp_path / "nowhere.py")})
    assert bad.returncode == 1 and "is not a DAG file exported by airflow-kedro-mlflow" in bad.stderr


def _settle(request: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "airflow_kedro_mlflow.runtime.parent_sync"],
                          input=json.dumps(request), capture_output=True, text=True, timeout=300,
                          cwd=Path(request["dag_file"]).parent)


def _snapshot(state: str, end: str | None, end_record: dict | None = None, clear_number: int = 1):
    from airflow_kedro_mlflow.runtime.listener import _DagRunSnapshot

    steps = {"kedro_run_start": "success", "random_forest.train_model": "success",
             "kedro_run_end": end}
    run = {"dag_id": "wine_classifier_s3", "run_id": "r", "state": state,
           "clear_number": clear_number, "run_after": None, "start_date": None, "end_date": None}
    return _DagRunSnapshot(str(REPO / "dags" / "wine_classifier_s3.py"), run, steps, end_record)


@pytest.fixture
def airflow_db(monkeypatch):
    """The listener's reads of Airflow's database replayed from a list (one snapshot per read),
    and the settling process replaced by a record of the status it would write: the
    interleavings below take the real components seconds and luck to produce."""
    from airflow_kedro_mlflow.runtime import listener

    reads: list = []
    written: list[str] = []

    def settle(snapshot) -> bool:
        """A status written, or (``"!"`` queued in ``written``) a settling that failed."""
        if written and written[-1] == "!":
            written[-1] = "failed"
            return False
        written.append(snapshot.outcome["status"])
        return True

    monkeypatch.setattr(listener, "read_dag_run", lambda *args: reads.pop(0))
    monkeypatch.setattr(listener, "_run_settler_process", settle)
    return reads, written


def test_a_listener_write_that_may_have_undone_the_end_tasks_is_settled_again_at_the_end(airflow_db):
    """A task marked success reruns what it had blocked, end task included. The listener's
    RUNNING lands after the end task wrote FINISHED, and the scheduler's "success" (natural,
    with the end task's matching record) would change nothing: the listener watches the run
    and settles once the end task is done and the run has ended."""
    from airflow_kedro_mlflow.runtime.listener import _Request, settle_dag_run

    reads, written = airflow_db
    record = {"status": "FINISHED", "failed_steps": [], "clear_number": 1}
    reads += [_snapshot("running", None), _snapshot("running", "success", record)]
    watch = settle_dag_run(_Request("wine_classifier_s3", "r", None, natural=False))
    assert written == ["RUNNING"] and watch is not None and watch.watch

    reads += [_snapshot("running", "success", record)]  # the scheduler has not ended it yet
    assert settle_dag_run(watch) == watch and written == ["RUNNING"]

    ended = _snapshot("success", "success", record)
    reads += [ended, ended]
    assert settle_dag_run(watch) is None
    assert written == ["RUNNING", "FINISHED"]


def test_a_natural_end_trusts_only_an_end_task_that_succeeded(airflow_db):
    from airflow_kedro_mlflow.runtime.listener import _Request, settle_dag_run

    reads, written = airflow_db
    record = {"status": "FINISHED", "failed_steps": [], "clear_number": 1}
    natural = _Request("wine_classifier_s3", "r", "success", natural=True)
    reads += [_snapshot("success", "success", record)]
    assert settle_dag_run(natural) is None and written == []  # the end task settled exactly this
    killed = _snapshot("success", "failed", record)  # its record, then SIGKILLed on every try
    reads += [killed, killed]
    assert settle_dag_run(natural) is None and written == ["FINISHED"]


def test_a_newer_request_keeps_what_a_pending_one_asked_for():
    from airflow_kedro_mlflow.runtime.listener import _Request

    watch = _Request("d", "r", None, natural=False, watch=True)
    natural = _Request("d", "r", "success", natural=True)
    merged = natural.merged_with(watch)
    assert (merged.state, merged.natural, merged.watch) == ("success", False, True)


def test_a_settling_that_failed_is_tried_again_later_not_taken_for_settled(airflow_db):
    """The settling process failed (MLflow refused or was away, the process was killed): the
    run is served again after a pause that grows, settled then from the run as it is, whatever
    the end task recorded; and given up after RETRY_LIMIT tries."""
    from airflow_kedro_mlflow.runtime.listener import (
        RETRY_FIRST_S,
        RETRY_LIMIT,
        RETRY_MAX_S,
        _Request,
        settle_dag_run,
    )

    reads, written = airflow_db
    written.append("!")
    reads += [_snapshot("success", "failed")]
    retry = settle_dag_run(_Request("wine_classifier_s3", "r", "success", natural=True))
    assert written == ["failed"]
    assert retry is not None and (retry.failures, retry.natural, retry.state) == (1, False, None)
    assert retry.delay_s == RETRY_FIRST_S

    ended = _snapshot("success", "failed")
    reads += [ended, ended]
    assert settle_dag_run(retry) is None and written == ["failed", "FINISHED"]

    late = _Request("d", "r", None, natural=False, failures=RETRY_LIMIT - 2)
    assert late.delay_s == RETRY_MAX_S
    assert late.retried() is not None and late.retried().retried() is None


def test_a_tag_two_writers_drop_at_once_fails_neither(tmp_path):
    """The end task and a listener (or two listeners) settle a parent at once and both drop
    ``kedro.failed_nodes``: MLflow refuses the second deletion, which must not stop that
    writer before its status write."""
    from airflow_kedro_mlflow.runtime.mlflow_rest import tracking_client
    from airflow_kedro_mlflow.runtime.tracking import drop_tag

    client = tracking_client(f"sqlite:///{tmp_path / 'mlflow.db'}")
    run = client.create_run(client.create_experiment("e"), tags={"kedro.failed_nodes": "a"})
    drop_tag(client, run.info.run_id, "kedro.failed_nodes")
    drop_tag(client, run.info.run_id, "kedro.failed_nodes")  # the other writer's
    assert "kedro.failed_nodes" not in client.get_run(run.info.run_id).data.tags
    client.set_tag(run.info.run_id, "kedro.failed_nodes", "a")
    client.delete_run(run.info.run_id)
    with pytest.raises(Exception, match="must be in the 'active' state"):
        drop_tag(client, run.info.run_id, "kedro.failed_nodes")  # any other refusal still fails


def test_a_run_still_moving_after_every_attempt_is_looked_at_again(airflow_db):
    """Each settling found the run changed again (three clicks in a row): the last write may be
    stale, so the run is served again shortly instead of being taken for settled."""
    from airflow_kedro_mlflow.runtime.listener import WATCH_INTERVAL_S, _Request, settle_dag_run

    reads, written = airflow_db
    reads += [_snapshot("failed", "success"), _snapshot("running", "success"),
              _snapshot("success", "success")]
    again = settle_dag_run(_Request("wine_classifier_s3", "r", "failed", natural=False),
                           attempts=2)
    assert written == ["FAILED", "RUNNING"]
    assert again is not None and (again.state, again.natural, again.watch) == (None, False, False)
    assert again.delay_s == WATCH_INTERVAL_S
