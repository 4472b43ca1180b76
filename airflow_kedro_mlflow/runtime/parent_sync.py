"""Settle a DAG run's MLflow parent run from outside the DAG run: ``python -m`` this module.

The parent-run listener (``airflow_kedro_mlflow.runtime.listener``) starts it from Airflow's scheduler or
API server whenever a DAG run of an exported DAG changes state in a way its end task did not
settle (a clear of only the failed tasks, a run or task marked by hand, an end task that never
ran). It reads one JSON request on stdin: the DAG file, the DAG run (ids, dates, clear number,
state) and its task states, as the listener read them from Airflow's database; it opens the
project's MLflow settings as a task would (``mlflow.yml``; ``credentials.yml`` only if
``server.credentials`` names an entry) and settles the parent (``Tracker.settle_parent``). Its
last line of output is one JSON object: the parent run and its status.

A process of its own, not the listener's: the scheduler must not wait on MLflow (its client
retries an unreachable server for minutes), and the project's settings module, which opening a
project imports, must not run inside Airflow's own components. The listener gives it an
environment without Airflow's secrets (database URL, JWT and Fernet keys).
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from airflow_kedro_mlflow.config.credentials import Credentials
from airflow_kedro_mlflow.config.project_ref import KedroProject
from airflow_kedro_mlflow.core.dag_file import read_exported_dag, step_states
from airflow_kedro_mlflow.core.errors import AirflowKedroError
from airflow_kedro_mlflow.core.run_identity import RunIdentity
from airflow_kedro_mlflow.core.run_outcome import parent_outcome

log = logging.getLogger(__name__)


class _CredentialsOnDemand(Credentials):
    """credentials.yml, read only if an entry is asked for: settling a parent needs none unless
    mlflow.yml's ``server.credentials`` names one, and the scheduler may lack the variables
    that the catalog's entries resolve."""

    def __init__(self, loader: Any, conf_root: Path, env: str | None) -> None:
        self._loader, self._conf_root, self._env = loader, conf_root, env
        self._loaded: Credentials | None = None

    def entry(self, name: str, referenced_by: str) -> dict[str, Any]:
        if self._loaded is None:
            self._loaded = Credentials.from_loader(self._loader, self._conf_root, self._env)
        return self._loaded.entry(name, referenced_by)


def open_tracker(project: KedroProject) -> Any:
    """The project's MLflow tracker (``None``: tracking is off), opened as a task opens it."""
    from airflow_kedro_mlflow.config import connections
    from airflow_kedro_mlflow.config.kedro_project import bootstrap, conf_source_path, config_loader
    from airflow_kedro_mlflow.runtime.tracking import Tracker

    path = project.locate(ask_airflow=False)  # no Task SDK here to ask for a Variable
    metadata = bootstrap(path)
    connections.register()
    loader = config_loader(path, project.env, project.conf_source)
    credentials = _CredentialsOnDemand(loader, conf_source_path(path, project.conf_source),
                                       project.env)
    return Tracker.open(project, path, metadata.package_name, credentials, loader)


def settle(request: dict[str, Any]) -> dict[str, Any]:
    """Settle the parent of the DAG run in ``request``; what it now says."""
    exported = read_exported_dag(request["dag_file"])
    if exported is None:
        raise AirflowKedroError(f"{request['dag_file']} is not a DAG file exported by "
                                "airflow-kedro-mlflow (no KedroProject(...) in it)")
    project = KedroProject(**exported.project)
    run = RunIdentity(
        dag_id=request["dag_id"],
        run_id=request["run_id"],
        run_after=_moment(request["run_after"]) or datetime.now(),
        start_date=_moment(request.get("start_date")),
        clear_number=int(request.get("clear_number") or 0),
    )
    outcome = parent_outcome(request["state"],
                             step_states(exported.steps, request.get("task_states") or {}),
                             run.clear_number)
    tracker = open_tracker(project)
    if tracker is None:
        return {"tracked": False}
    started, ended = _moment(request.get("start_date")), _moment(request.get("end_date"))
    duration = (ended - started).total_seconds() if outcome.finished and started and ended else None
    parent = tracker.settle_parent(run, None, outcome, duration, pipeline=project.pipeline)
    if parent is None:
        return {"tracked": True, "parent_run_id": None}
    return {"tracked": True, "parent_run_id": parent.info.run_id, "status": parent.info.status,
            "failed_steps": list(outcome.failed_steps)}


def _moment(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def main() -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        result = settle(json.load(sys.stdin))
    except Exception as exc:  # reported by the listener, in the scheduler's log
        from airflow_kedro_mlflow.config.credentials import redact

        print(redact(f"{type(exc).__name__}: {exc}"), file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
