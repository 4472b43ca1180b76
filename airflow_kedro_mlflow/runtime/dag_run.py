"""The start and end of a DAG run: what happens once per run rather than once per node."""

from __future__ import annotations

import logging
import subprocess
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from airflow_kedro_mlflow.config.kedro_project import (
    config_loader,
    create_session,
    describe_sources,
    read_config,
)
from airflow_kedro_mlflow.config.project_ref import KedroProject
from airflow_kedro_mlflow.config.run_conf import check_known
from airflow_kedro_mlflow.core.errors import AirflowKedroError, ProjectOpenError
from airflow_kedro_mlflow.core.run_identity import RunIdentity
from airflow_kedro_mlflow.core.run_outcome import (
    OK_STATES,
    ParentOutcome,
    expected_run_state,
    parent_outcome,
)
from airflow_kedro_mlflow.runtime.task_runtime import TaskRuntime

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class TrackedRun:
    """The MLflow run a task logged into, as the task reports it (run id and UI URL)."""

    run_id: str
    url: str | None
    experiment_id: str | None = None


def start_run(
    project: KedroProject,
    run: RunIdentity,
    runtime_params: dict[str, Any],
    dag_run_state: Callable[[str], str | None] | None = None,
    gate_reruns: bool = True,
) -> TrackedRun | None:
    """Open (or find again) the DAG run's MLflow parent run, then open the project exactly as a
    node task will (session, hooks, context, catalog), so that a project that cannot run here
    fails once, before any node, with a message that says what to fix.

    ``dag_run_state(run_id)`` (the state of another run of the DAG in Airflow) lets the start
    task close parents of runs that ended without closing theirs. ``gate_reruns``: the promotion
    gate runs in this attempt (its earlier verdict is dropped).
    """
    runtime = TaskRuntime.open(project, run, runtime_params)
    if runtime_params:
        check_known(
            runtime_params,
            project_parameters(runtime),
            f"Kedro project '{project.package_name}' (env {runtime.env_description})",
        )
    project_path, store = runtime.path, runtime.store
    log.info(
        "DAG run %s of Kedro project %s: save version %s, intermediate store %s",
        run.run_id,
        project_path,
        run.save_version,
        store.url,
    )
    if runtime_params:
        log.info("Kedro runtime parameters from the DAG run's conf: %s", sorted(runtime_params))
    store.clear_end()  # a cleared run is running again: its kept data is in use
    store.ensure_key()  # node tasks sign their data with its key: generated here if none is set
    tracker = runtime.tracker
    if tracker is None:
        open_project(runtime, runtime_params)
        return None
    parent = tracker.ensure_parent(run, parent_tags(runtime), runtime.parameters, gate_reruns)
    if dag_run_state is not None:
        tracker.close_stale_parents(run, dag_run_state)
    with tracker.activated(parent):
        open_project(runtime, runtime_params)
    return TrackedRun(parent.info.run_id, tracker.run_url(parent), parent.info.experiment_id)


def project_parameters(runtime: TaskRuntime) -> dict[str, Any]:
    """The project's own parameters, without the DAG run's conf merged in."""
    project = runtime.project
    loader = config_loader(runtime.path, project.env, project.conf_source)
    source = describe_sources(runtime.conf_root, project.env, "parameters")
    return read_config(loader, "parameters", ["parameters*", "parameters*/**", "**/parameters*"],
                       source) or {}


def open_project(runtime: TaskRuntime, runtime_params: dict[str, Any] | None) -> None:
    """Create the Kedro session, context and catalog of a node task, hooks included."""
    project = runtime.project
    try:
        session = create_session(
            runtime.path,
            env=project.env,
            conf_source=project.conf_source,
            save_version=runtime.run.save_version,
            runtime_params=runtime_params or None,
            loader=runtime.loader,
        )
        with session:
            context = session.load_context()
            context.catalog  # noqa: B018 - instantiating it runs after_catalog_created hooks
    except AirflowKedroError:
        raise
    except Exception as exc:
        raise ProjectOpenError(describe_open_failure(runtime, exc)) from exc


def describe_open_failure(runtime: TaskRuntime, exc: BaseException) -> str:
    """One message: which project failed to open here, why, and the likely fix."""
    project = runtime.project
    where = f"Kedro project '{project.package_name}' at {runtime.path} (env {runtime.env_description})"
    cause = f"{type(exc).__name__}: {exc}"
    hint = ""
    if _raised_by(exc, "kedro_mlflow") and runtime.tracker is None:
        hint = (
            " kedro-mlflow is installed and its hook is active, but tracking is not configured for "
            f"this DAG: add conf/{project.env or 'base'}/mlflow.yml (`kedro mlflow init --env "
            f"{project.env or 'base'}`) with server.mlflow_tracking_uri set to 'sqlite:///mlflow.db' "
            "or a tracking server URL, or set MLFLOW_TRACKING_URI for the workers (MLflow 3 refuses "
            "kedro-mlflow's default './mlruns')."
        )
    return f"{where} cannot be opened on this worker: {cause}.{hint}"


def _raised_by(exc: BaseException, package: str) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        frames = traceback.extract_tb(seen.__traceback__)
        if any(f"/{package}/" in frame.filename for frame in frames):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def finish_run(
    project: KedroProject,
    run: RunIdentity,
    step_states: Mapping[str, str | None],
    parent_run_id: str | None,
) -> tuple[ParentOutcome, TrackedRun | None]:
    """Close the DAG run: the parent's final status, then the end record of its intermediate data.

    ``step_states`` maps the run's steps (the start task, nodes, the promotion gate) to their
    task's state; the parent is settled as the DAG run they lead to (``run_outcome``), the same
    verdict the parent-run listener reaches once Airflow has set the DAG run's state. The
    intermediate data is kept, successful run or not, for ``intermediate_retention``: it is what
    lets any task of a finished run be cleared and rerun without its upstream tasks; the run
    folders of this DAG whose retention is over are removed here.
    """
    outcome = parent_outcome(expected_run_state(step_states), step_states, run.clear_number)
    runtime = TaskRuntime.open(project, run)
    tracked = None
    tracker = runtime.tracker
    if tracker is not None:
        duration = (
            (datetime.now(UTC) - run.start_date).total_seconds() if run.start_date else None
        )
        parent = tracker.settle_parent(run, parent_run_id, outcome, duration,
                                       pipeline=project.pipeline)
        if parent is not None:
            tracked = TrackedRun(parent.info.run_id, tracker.run_url(parent))
    store = runtime.store
    unsuccessful = sorted(n for n, state in step_states.items() if str(state) not in OK_STATES)
    store.record_end(unsuccessful)
    retention = runtime.settings.intermediate_retention
    if unsuccessful:
        log.warning("Steps not successful: %s; keeping intermediate data at %s for a rerun",
                    ", ".join(unsuccessful), store.url)
    log.info("Intermediate data at %s is kept for %s (airflow.yml 'intermediate_retention') so "
             "that any task of this run can be cleared and rerun", store.url, retention)
    from airflow_kedro_mlflow.runtime.housekeeping import prune_expired

    prune_expired(store, retention)
    return outcome, tracked


def parent_tags(runtime: TaskRuntime) -> dict[str, str]:
    """Who ran: the Airflow DAG run and the Kedro project, as MLflow tags on the parent run."""
    project, project_path, metadata, run = runtime.project, runtime.path, runtime.metadata, runtime.run
    tags = {
        "airflow.run_after": run.run_after.isoformat(),
        "airflow.logical_date": run.logical_date.isoformat() if run.logical_date else "",
        "airflow.run_type": run.run_type or "",
        "airflow.dag_run_url": run.dag_run_url or "",
        "kedro.project": metadata.project_name,
        "kedro.package": metadata.package_name,
        "kedro.pipeline": project.pipeline,
        "kedro.env": runtime.env,  # the env the tasks ran with: Kedro's default run env if none
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
