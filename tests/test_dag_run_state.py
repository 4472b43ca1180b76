"""Fast tests: the start task tells a deleted DAG run from one it cannot tell about by the errors
the Airflow Task SDK raises (its own client, supervisor and comms, before a stand-in execution
API), never by their text: only a deleted run's MLflow parent may be closed as KILLED."""

from __future__ import annotations

import pytest
from airflow.sdk.exceptions import AirflowRuntimeError
from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance
from task_sdk_comms import ExecutionApi, dag_test_comms, deployment_comms

from airflow_kedro_mlflow.operators.base import dag_run_state

DAG = "wine_classifier"
RUNNING = "manual__2026-11-23T09:00:00+00:00"
RUNS = {(DAG, RUNNING): "running", (DAG, "nightly-1"): "failed"}


@pytest.fixture(params=["deployment", "dag.test"])
def comms(request):
    """The two ways the SDK hands the API's answer to the task (they raise different types)."""
    return {"deployment": deployment_comms, "dag.test": dag_test_comms}[request.param]


def test_a_deleted_run_is_none_and_existing_runs_have_their_state(comms):
    state = dag_run_state(RuntimeTaskInstance, DAG)
    with comms(ExecutionApi(RUNS)):
        assert state("deleted-run") is None
        assert state(RUNNING) == "running"
        assert state("nightly-1") == "failed"


def test_an_unreachable_api_whose_error_says_not_found_is_unknown(comms):
    api = ExecutionApi(RUNS, unreachable="[Errno -2] Name or service not known: host not found")
    with comms(api):
        assert dag_run_state(RuntimeTaskInstance, DAG)("deleted-run") == "unknown"
    assert api.asked  # asked, and the answer was no answer


def test_a_404_that_is_not_the_apis_not_found_is_unknown(comms):
    """A server or proxy without the route answers 404 too, with no word on the run."""
    with comms(ExecutionApi(RUNS, routes=False)):
        assert dag_run_state(RuntimeTaskInstance, DAG)("deleted-run") == "unknown"


class _FailingTi:
    def __init__(self, exc: Exception):
        self.exc = exc

    def get_dagrun_state(self, dag_id: str, run_id: str) -> str:
        raise self.exc


@pytest.mark.parametrize("exc", [
    ConnectionError("host not found"),
    RuntimeError("DAG_RUN_NOT_FOUND"),
    KeyError("Dag run not found"),
])
def test_an_unrelated_error_whose_text_says_not_found_is_unknown(exc):
    assert dag_run_state(_FailingTi(exc), DAG)("deleted-run") == "unknown"


def test_the_sdk_asks_about_another_url_for_a_run_id_of_a_dot():
    """Why such ids are not asked about: the SDK's client puts them in the URL unquoted."""
    api = ExecutionApi(RUNS)
    with deployment_comms(api), pytest.raises(AirflowRuntimeError):
        RuntimeTaskInstance.get_dagrun_state(dag_id=DAG, run_id=".")
    assert api.asked == [f"/execution/dag-runs/{DAG}/state"]


@pytest.mark.parametrize("run_id", [".", "..", "a/b", "x?y", "x#y", "x%2Fy", ""])
def test_run_ids_that_do_not_reach_the_api_intact_are_unknown_and_not_asked(comms, run_id):
    api = ExecutionApi(RUNS)
    with comms(api):
        assert dag_run_state(RuntimeTaskInstance, DAG)(run_id) == "unknown"
    assert api.asked == []


class _Parents:
    """MLflow's bookkeeping client, holding a RUNNING parent for each of the DAG's other runs."""

    def __init__(self, run_ids: list[str]):
        from airflow_kedro_mlflow.runtime.mlflow_rest import Run, RunData, RunInfo
        from airflow_kedro_mlflow.runtime.tracking import TAG_RUN_ID

        self.parents = [Run(RunInfo(f"parent-of-{run_id}", "7", "RUNNING"),
                            RunData(tags={TAG_RUN_ID: run_id})) for run_id in run_ids]
        self.terminated: dict[str, str] = {}

    def get_experiment_by_name(self, name):
        from airflow_kedro_mlflow.runtime.mlflow_rest import Experiment

        return Experiment("7", "active")

    def search_runs(self, experiment_ids, filter_string, max_results):
        return self.parents

    def set_tag(self, run_id, key, value):
        pass

    def set_terminated(self, run_id, status="FINISHED"):
        self.terminated[run_id] = status


def test_the_start_task_closes_only_parents_of_runs_airflow_ended_or_deleted(comms):
    from datetime import UTC, datetime
    from pathlib import Path

    from airflow_kedro_mlflow.config.mlflow import settings_from_dict
    from airflow_kedro_mlflow.core.run_identity import RunIdentity
    from airflow_kedro_mlflow.runtime.tracking import Tracker

    settings = settings_from_dict({"server": {"mlflow_tracking_uri": "http://127.0.0.1:5000"}},
                                  project_path=Path("/project"), pipeline_name="__default__",
                                  package_name="pkg", source="conf/base/mlflow.yml", environ={})
    tracker = Tracker(settings)
    client = tracker.__dict__["client"] = _Parents(
        [RUNNING, "nightly-1", "done", "deleted-run", ".", "current"])
    api = ExecutionApi({**RUNS, (DAG, "done"): "success", (DAG, "current"): "running"})
    current = RunIdentity(DAG, "current", datetime(2026, 11, 23, tzinfo=UTC))
    with comms(api):
        tracker.close_stale_parents(current, dag_run_state(RuntimeTaskInstance, DAG))
    assert client.terminated == {
        "parent-of-nightly-1": "FAILED",
        "parent-of-done": "FINISHED",
        "parent-of-deleted-run": "KILLED",
    }  # running, current and unknown (".") runs' parents are left alone
