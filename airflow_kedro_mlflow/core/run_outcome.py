"""What the MLflow parent run of a DAG run must say, from the DAG run's state in Airflow.

One pure function serves the two places that settle a parent run: the end task (inside the DAG
run, from its steps' states) and the parent-run listener (in the scheduler or API server, after any
state change: a clear, a mark, a teardown that never ran). Both must reach the same verdict for
the same states, so it is decided here once. Light module: imported by the listener in Airflow's
own processes, so no Kedro, MLflow or project imports.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

OK_STATES = frozenset({"success"})
"""A step (node, gate, start) that did not succeed, skipped included, did not do its work: a DAG
run marked failed by hand skips its pending tasks."""
RUNNING_STATES = frozenset({"queued", "running"})
OUTCOME_XCOM_KEY = "mlflow_parent_outcome"
"""The end task's record of the outcome it settled the parent with (``as_record``): the parent-run
listener leaves a DAG run alone whose end task already settled what Airflow decided."""

STATUS_OF_RUN_STATE = {"success": "FINISHED", "failed": "FAILED"}
"""MLflow run status for a finished DAG run's state; running and queued runs are RUNNING and a
DAG run that no longer exists (deleted) is KILLED."""


@dataclass(frozen=True)
class ParentOutcome:
    """The parent run's status and tags for one state of its DAG run."""

    status: str
    """``RUNNING``, ``FINISHED``, ``FAILED`` or ``KILLED``."""
    failed_steps: tuple[str, ...]
    """The steps named in ``kedro.failed_nodes``: empty unless the DAG run failed."""
    clear_number: int

    @property
    def finished(self) -> bool:
        return self.status != "RUNNING"

    def as_record(self) -> dict[str, object]:
        """As the end task records it in XCom (JSON), so the listener can tell it is settled."""
        return {"status": self.status, "failed_steps": list(self.failed_steps),
                "clear_number": self.clear_number}


def parent_outcome(
    run_state: str | None, step_states: Mapping[str, str | None], clear_number: int = 0
) -> ParentOutcome:
    """The parent's outcome when the DAG run is in ``run_state`` (``None``: deleted) and its steps
    (start task, nodes, promotion gate, by step name) are in ``step_states``.

    A failed DAG run names the steps that failed, or, if none did (a run marked failed by hand
    while its steps were pending), those that did not succeed.
    """
    state = str(run_state) if run_state is not None else None
    if state is None:
        return ParentOutcome("KILLED", (), clear_number)
    if state in RUNNING_STATES:
        return ParentOutcome("RUNNING", (), clear_number)
    status = STATUS_OF_RUN_STATE.get(state, "FAILED")
    if status == "FINISHED":
        return ParentOutcome(status, (), clear_number)
    failed = sorted(name for name, s in step_states.items() if str(s) == "failed")
    unsuccessful = sorted(name for name, s in step_states.items() if str(s) not in OK_STATES)
    return ParentOutcome(status, tuple(failed or unsuccessful), clear_number)


def expected_run_state(step_states: Mapping[str, str | None]) -> str:
    """The DAG run's state its steps' states lead to (what the end task, a teardown that runs
    before Airflow decides the run's state, settles the parent with)."""
    return "success" if all(str(s) in OK_STATES for s in step_states.values()) else "failed"
