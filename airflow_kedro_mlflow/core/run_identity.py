"""Who is running: the Airflow DAG run and task try a Kedro node executes for.

Everything that must be equal across the tasks of one DAG run, and different between DAG runs, is
derived here from the run's identity, never from the clock of the task's process: the Kedro save
version and the intermediate store's prefix. Light module: no Kedro imports.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from airflow_kedro_mlflow.core.ids import short_hash


@dataclass(frozen=True)
class RunIdentity:
    dag_id: str
    run_id: str
    run_after: datetime
    task_id: str = ""
    try_number: int = 1
    logical_date: datetime | None = None
    run_type: str | None = None
    log_url: str | None = None
    """This task try's log page in the Airflow UI."""
    start_date: datetime | None = None
    """When the DAG run (last) started: set anew when a finished run is cleared."""
    clear_number: int = 0
    """How many times the DAG run was cleared: 0 for a new run, also for one recreated under the
    id of a deleted run. With ``start_date`` it tells a cleared run from a recreated one."""

    @property
    def dag_run_url(self) -> str | None:
        """The DAG run's page in the Airflow UI (derived from the task's log URL)."""
        if not self.log_url or "/tasks/" not in self.log_url:
            return None
        return self.log_url.rsplit("/tasks/", 1)[0]

    @classmethod
    def from_context(cls, context: Any) -> RunIdentity:
        dag_run = context["dag_run"]
        ti = context["ti"]
        return cls(
            dag_id=dag_run.dag_id,
            run_id=dag_run.run_id,
            run_after=dag_run.run_after,
            task_id=ti.task_id,
            try_number=getattr(ti, "try_number", 1) or 1,
            logical_date=getattr(dag_run, "logical_date", None),
            run_type=_text(getattr(dag_run, "run_type", None)),
            log_url=_safe(lambda: ti.log_url),
            start_date=getattr(dag_run, "start_date", None),
            clear_number=int(getattr(dag_run, "clear_number", 0) or 0),
        )

    @property
    def save_version(self) -> str:
        return save_version_for(self.run_after, self.dag_id, self.run_id)


def save_version_for(run_after: datetime, dag_id: str, run_id: str) -> str:
    """The Kedro save version shared by all tasks of one DAG run.

    It starts with Kedro's own timestamp format (``2026-11-23T09.03.58.123Z``) so versions still
    sort by time, and ends with a digest of the DAG and run ids so two runs triggered within the
    same millisecond, or two DAGs of one project, never share a version.
    """
    moment = run_after.astimezone(UTC)
    stamp = moment.strftime("%Y-%m-%dT%H.%M.%S.") + f"{moment.microsecond // 1000:03d}Z"
    return f"{stamp}-{short_hash(f'{dag_id}/{run_id}', 6)}"


def _safe(getter: Any) -> Any:
    try:
        return getter()
    except Exception:  # a URL is a convenience: never fail a task for want of one
        return None


def _text(value: Any) -> str | None:
    """An Airflow enum (or plain string) as its value: ``manual``, not ``DagRunType.MANUAL``."""
    if value is None:
        return None
    return str(getattr(value, "value", value))
