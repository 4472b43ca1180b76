"""The start and end of a DAG run: what happens once per run rather than once per node."""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from airflow_kedro_mlflow.kedro_project import config_loader
from airflow_kedro_mlflow.project_ref import KedroProject
from airflow_kedro_mlflow.run_identity import RunIdentity
from airflow_kedro_mlflow.runtime.task_runtime import TaskRuntime

log = logging.getLogger(__name__)

OK_STATES = {"success", "skipped"}


@dataclass(frozen=True)
class TrackedRun:
    """The MLflow run a task logged into, as the task reports it (run id and UI URL)."""

    run_id: str
    url: str | None


def start_run(
    project: KedroProject, run: RunIdentity, runtime_params: dict[str, Any]
) -> TrackedRun | None:
    """Check the project is usable here and open (or find again) the DAG run's MLflow parent run."""
    runtime = TaskRuntime.open(project, run)
    project_path, metadata, store = runtime.path, runtime.metadata, runtime.store
    log.info(
        "DAG run %s of Kedro project %s: save version %s, intermediate store %s",
        run.run_id,
        project_path,
        run.save_version,
        store.url,
    )
    if runtime_params:
        log.info("Kedro runtime parameters from the DAG run's conf: %s", sorted(runtime_params))
    tracker = runtime.tracker
    if tracker is None:
        return None
    loader = config_loader(project_path, project.env, project.conf_source, runtime_params or None)
    parent = tracker.ensure_parent(
        run, parent_tags(project, project_path, metadata, run), loader["parameters"]
    )
    return TrackedRun(parent.info.run_id, tracker.run_url(parent))


def finish_run(
    project: KedroProject, run: RunIdentity, node_states: Mapping[str, str | None]
) -> tuple[list[str], TrackedRun | None]:
    """Close the DAG run: final MLflow status, then cleanup; returns the nodes that did not succeed.

    ``node_states`` maps node names to their task's state. The intermediate data is removed only
    when every node succeeded: after a failure it is what lets a cleared task rerun without
    rerunning its upstream tasks.
    """
    unsuccessful = sorted(n for n, state in node_states.items() if str(state) not in OK_STATES)
    failed = sorted(n for n, state in node_states.items() if str(state) == "failed")
    runtime = TaskRuntime.open(project, run)
    tracked = None
    tracker = runtime.tracker
    if tracker is not None:
        duration = (
            (datetime.now(timezone.utc) - run.start_date).total_seconds() if run.start_date else None
        )
        parent = tracker.finish_parent(run, failed or unsuccessful, bool(unsuccessful), duration)
        if parent is not None:
            tracked = TrackedRun(parent.info.run_id, tracker.run_url(parent))
            log.info("MLflow parent run %s is %s", parent.info.run_id, parent.info.status)
    store = runtime.store
    if unsuccessful:
        log.warning(
            "Nodes not successful: %s; keeping intermediate data at %s",
            ", ".join(unsuccessful),
            store.url,
        )
    else:
        store.remove()
        log.info("All nodes succeeded; removed intermediate data at %s", store.url)
    return unsuccessful, tracked


def parent_tags(
    project: KedroProject, project_path: Path, metadata: Any, run: RunIdentity
) -> dict[str, str]:
    """Who ran: the Airflow DAG run and the Kedro project, as MLflow tags on the parent run."""
    tags = {
        "airflow.run_after": run.run_after.isoformat(),
        "airflow.logical_date": run.logical_date.isoformat() if run.logical_date else "",
        "airflow.run_type": run.run_type or "",
        "airflow.dag_run_url": run.dag_run_url or "",
        "kedro.project": metadata.project_name,
        "kedro.package": metadata.package_name,
        "kedro.pipeline": project.pipeline,
        "kedro.env": project.env or "",
        "kedro.save_version": run.save_version,
        "kedro.package_version": _package_version(metadata.package_name),
        "kedro.git_sha": _git_sha(project_path),
        "mlflow.source.name": f"airflow:{run.dag_id}",
    }
    return {key: value for key, value in tags.items() if value}


def _package_version(package_name: str) -> str:
    import importlib

    try:
        return str(getattr(importlib.import_module(package_name), "__version__", "") or "")
    except Exception:
        return ""


def _git_sha(project_path: Path) -> str:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=project_path,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return result.stdout.strip() if result.returncode == 0 else ""
