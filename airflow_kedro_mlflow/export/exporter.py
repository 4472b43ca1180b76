"""Export Kedro pipelines as DAG files: compile, render, check, then write all-or-nothing.

Every DAG file is first written to a scratch folder (and, with ``check``, loaded by a real Airflow
``DagBag`` there); only when all of them are good are they moved into the target folder, so a
failed export never leaves a partial or broken file where the scheduler would pick it up.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow_kedro_mlflow.config.kedro_project import conf_source_path, config_files
from airflow_kedro_mlflow.core.errors import ExportError
from airflow_kedro_mlflow.export.compiler import CompiledPipeline, compile_project
from airflow_kedro_mlflow.export.dagbag import load_dagbag
from airflow_kedro_mlflow.export.renderer import render_dag


@dataclass(frozen=True)
class ExportedDag:
    compiled: CompiledPipeline
    path: Path
    changed: bool
    checked_tasks: int | None = None
    """With ``check``: how many tasks Airflow's DagBag found in the DAG."""


def export_project(
    project_path: Path,
    target_dir: Path,
    pipeline_names: list[str] | None = None,
    env: str | None = None,
    conf_source: str | None = None,
    check: bool = False,
    group_by: str | None = None,
    tags: list[str] | None = None,
    overrides: dict[str, Any] | None = None,
    skipped: list[tuple[str, str]] | None = None,
) -> list[ExportedDag]:
    """``tags``: only nodes with one of them; ``overrides``: airflow.yml keys (``--params``);
    ``skipped``: collect the pipelines that cannot run on their own instead of failing."""
    project_path = Path(project_path).resolve()
    target_dir = Path(target_dir).resolve()
    compiled = compile_project(project_path, pipeline_names, env, conf_source, group_by, tags,
                               overrides, skipped)
    _check_distinct_dag_ids(compiled)
    project_from_dags = os.path.relpath(project_path, target_dir)
    conf_from_project = _relative_conf_source(project_path, conf_source)
    sources = {
        f"{item.manifest.dag_id}.py": (
            item,
            render_dag(item.manifest, item.settings, project_from_dags, conf_from_project),
        )
        for item in compiled
    }
    _ensure_writable(target_dir)
    with tempfile.TemporaryDirectory(prefix=".export-", dir=target_dir) as scratch:
        for name, (_, source) in sources.items():
            (Path(scratch) / name).write_text(source)
        checked = (check_dag_files(Path(scratch), expected={i.manifest.dag_id for i in compiled})
                   if check else {})
        exported = []
        for name, (item, source) in sources.items():
            destination = target_dir / name
            changed = not destination.is_file() or destination.read_text() != source
            if changed:
                os.replace(Path(scratch) / name, destination)
            exported.append(ExportedDag(item, destination, changed,
                                        checked.get(item.manifest.dag_id)))
    return exported


def overlap_warnings(compiled: CompiledPipeline) -> list[str]:
    """Datasets that concurrent runs of the DAG would share: one run could read another's."""
    manifest, settings = compiled.manifest, compiled.settings
    if settings.max_active_runs == 1:
        return []
    runs = (f"max_active_runs is {settings.max_active_runs}" if settings.max_active_runs
            else "max_active_runs is not set: Airflow allows 16")
    return [
        f"DAG {manifest.dag_id}: dataset '{name}' is persisted but not versioned, written by task "
        f"{producer} and read by {', '.join(readers)}, and runs of the DAG may overlap ({runs}), "
        f"so one run can read another run's '{name}'. Set 'versioned: true' on it in the "
        "catalog, or 'max_active_runs: 1' in airflow.yml."
        for name, producer, readers in manifest.shared_unversioned()
    ]


def kedro_mlflow_warnings(project_path: Path, env: str | None, conf_source: str | None) -> list[str]:
    """kedro-mlflow's hook runs in every task of a project it is active for; without an
    mlflow.yml (nor MLFLOW_TRACKING_URI) it fails every DAG run's start task, MLflow 3 refusing
    its default ``./mlruns``. Said at export, before the first run fails."""
    if os.environ.get("MLFLOW_TRACKING_URI") or not _kedro_mlflow_hook_active():
        return []
    conf = conf_source_path(Path(project_path), conf_source)
    if config_files(conf, env, "mlflow"):
        return []
    return [
        f"kedro-mlflow is installed and its hook is active for this project, but "
        f"{conf}/{{base,{env or 'local'}}} has no mlflow.yml: every DAG run's start task will fail. "
        f"Add one (`kedro mlflow init{' --env ' + env if env else ''}`) with "
        "server.mlflow_tracking_uri set to 'sqlite:///mlflow.db' or a tracking server URL, or set "
        "MLFLOW_TRACKING_URI for the workers."
    ]


def _kedro_mlflow_hook_active() -> bool:
    """Whether Kedro registers kedro-mlflow's hooks (a ``kedro.hooks`` entry point of the
    distribution) for the project, which may disable them (``DISABLE_HOOKS_FOR_PLUGINS``)."""
    from importlib.metadata import entry_points

    from kedro.framework.project import settings

    disabled = {name.replace("_", "-") for name in settings.DISABLE_HOOKS_FOR_PLUGINS}
    return any(
        ep.dist is not None and ep.dist.name.replace("_", "-") == "kedro-mlflow"
        and "kedro-mlflow" not in disabled
        for ep in entry_points(group="kedro.hooks")
    )


def check_dag_files(folder: Path, expected: set[str]) -> dict[str, int]:
    """Load ``folder`` in a real Airflow DagBag; raise on any import error or missing DAG.
    Returns the number of tasks of each DAG found."""
    bag = load_dagbag(folder)
    if bag.import_errors:
        path, error = next(iter(bag.import_errors.items()))
        raise ExportError(f"Airflow cannot import the exported {Path(path).name}: {error.strip()}")
    missing = expected - set(bag.dag_ids)
    if missing:
        raise ExportError(f"Airflow found no DAG '{sorted(missing)[0]}' in the exported files")
    return {dag_id: len(dag.tasks) for dag_id, dag in bag.dags.items()}


def _check_distinct_dag_ids(compiled: list[CompiledPipeline]) -> None:
    seen: dict[str, str] = {}
    for item in compiled:
        other = seen.setdefault(item.manifest.dag_id, item.manifest.pipeline_name)
        if other != item.manifest.pipeline_name:
            raise ExportError(
                f"pipelines '{other}' and '{item.manifest.pipeline_name}' both export to DAG id "
                f"'{item.manifest.dag_id}': set a distinct dag_id for one in airflow.yml"
            )


def _ensure_writable(target_dir: Path) -> None:
    try:
        target_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"cannot create target folder {target_dir}: {exc.strerror}") from exc
    if not os.access(target_dir, os.W_OK | os.X_OK):
        raise ExportError(f"target folder {target_dir} is not writable")


def _relative_conf_source(project_path: Path, conf_source: str | None) -> str | None:
    """Keep the DAG file free of the exporting machine's paths where the conf is in the project."""
    if not conf_source:
        return None
    path = Path(conf_source).resolve()
    try:
        return path.relative_to(project_path).as_posix()
    except ValueError:
        return conf_source
