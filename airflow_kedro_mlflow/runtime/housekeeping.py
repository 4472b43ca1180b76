"""Find and remove the intermediate data that finished DAG runs left behind.

A DAG run keeps its intermediate data when it ends, successful or not, so that any of its tasks
can be cleared and rerun without its upstream tasks, and marks it with an end record. Nobody
reruns a run from months ago: airflow.yml's ``intermediate_retention`` says how long a run's data
is kept after it ended (or was last written by a rerun). The end task of each DAG run removes its
DAG's run folders past that (``prune_expired``); ``kedro airflow clean-intermediate`` lists each
run folder of a project's intermediate stores with its age and whether it ended, and removes those
past a given age. A folder without an end record belongs to a run still in progress, or to one
whose end task never ran; those are removed only when asked for explicitly (judged by their
newest object).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from airflow_kedro_mlflow.core.durations import seconds
from airflow_kedro_mlflow.core.errors import ConfigError


def parse_age(text: str) -> timedelta:
    """``30m``, ``12h``, ``7d``, ``2w`` (a unit is required)."""
    found = seconds(text)
    if found is None:
        raise ConfigError(f"--older-than {text!r}: use a number and a unit, e.g. 12h, 7d, 2w")
    return timedelta(seconds=found)


@dataclass(frozen=True)
class RunFolder:
    """The intermediate data of one DAG run."""

    url: str
    path: str
    """``url`` without its protocol, as the store's filesystem takes it."""
    dag_folder: str
    run_folder: str
    ended_at: datetime | None
    """When its end task recorded the run's end; ``None``: no end record."""
    newest: datetime | None
    """Time of the newest object in it."""
    unsuccessful: tuple[str, ...]
    size: int

    def age(self, now: datetime) -> timedelta | None:
        """Since the run ended or a rerun last wrote to it, whichever is later."""
        moments = [moment for moment in (self.ended_at, self.newest) if moment is not None]
        return now - max(moments) if moments else None


def run_folders(store: Any, dag_folders: list[str]) -> list[RunFolder]:
    """The run folders under ``<store root>/<dag folder>/`` of an ``IntermediateStore``."""
    from airflow_kedro_mlflow.runtime.intermediate import END_RECORD

    fs, protocol, root = store.fs, store.protocol, store.root
    found = []
    for dag_folder in dag_folders:
        base = f"{root.rstrip('/')}/{dag_folder}"
        if not fs.exists(base):
            continue
        for entry in fs.ls(base, detail=True):
            if entry.get("type") != "directory":
                continue
            path = entry["name"].rstrip("/")
            files = fs.find(path, detail=True)
            ended, unsuccessful = None, ()
            if f"{path}/{END_RECORD}" in files:
                with fs.open(f"{path}/{END_RECORD}", "r") as stream:
                    record = json.loads(stream.read())
                ended = datetime.fromisoformat(record["ended_at"])
                unsuccessful = tuple(record.get("unsuccessful", ()))
            times = [t for t in (_modified(info) for info in files.values()) if t is not None]
            found.append(RunFolder(
                url=f"{protocol}{path}",
                path=path,
                dag_folder=dag_folder,
                run_folder=path.rsplit("/", 1)[-1],
                ended_at=ended,
                newest=max(times) if times else None,
                unsuccessful=unsuccessful,
                size=sum(int(info.get("size") or 0) for info in files.values()),
            ))
    return sorted(found, key=lambda r: (r.dag_folder, r.run_folder))


def removable(folder: RunFolder, older_than: timedelta, include_unfinished: bool,
              now: datetime) -> bool:
    age = folder.age(now)
    if age is None or age < older_than:
        return False
    return folder.ended_at is not None or include_unfinished


def prune_expired(store: Any, retention: timedelta) -> list[str]:
    """Remove the run folders of ``store``'s DAG that ended longer than ``retention`` ago.

    Called by each DAG run's end task, so a deployment needs no cron job for it; best effort: a
    folder that cannot be listed or removed is logged and left for ``clean-intermediate``.
    """
    import logging

    log = logging.getLogger(__name__)
    dag_folder = store.prefix.rsplit("/", 2)[-2]
    now = datetime.now(UTC)
    removed: list[str] = []
    try:
        folders = run_folders(store, [dag_folder])
    except Exception as exc:
        log.warning("Could not list %s%s/%s for expired intermediate data: %s", store.protocol,
                    store.root, dag_folder, exc)
        return removed
    for folder in folders:
        if not removable(folder, retention, include_unfinished=False, now=now):
            continue
        try:
            remove_run_folders([(store, folder)])
        except Exception as exc:
            log.warning("Could not remove expired intermediate data at %s: %s", folder.url, exc)
            continue
        removed.append(folder.url)
    if removed:
        log.info("Removed intermediate data of %d run(s) of this DAG older than %s: %s",
                 len(removed), retention, ", ".join(removed))
    return removed


def remove_run_folders(targets: list[tuple[Any, RunFolder]]) -> None:
    """Remove these run folders, each of its ``IntermediateStore``, each only if strictly inside
    its DAG's folder.

    All are checked before any is removed: a listing that yields a path outside a run folder (an
    empty name, as ``<dag>//`` on an object store, is the DAG's folder itself) stops the
    clean-up with ``UnsafeRemovalError`` naming it, with nothing removed.
    """
    from airflow_kedro_mlflow.core.removal import check_strictly_below

    for store, folder in targets:
        dag_folder = f"{store.root.rstrip('/')}/{folder.dag_folder}"
        check_strictly_below(dag_folder, store.root, store.protocol, "the intermediate store")
        check_strictly_below(folder.path, dag_folder, store.protocol, "the DAG's folder")
    for store, folder in targets:
        store.fs.rm(folder.path, recursive=True)


def _modified(info: dict[str, Any]) -> datetime | None:
    value = info.get("LastModified") or info.get("mtime") or info.get("last_modified")
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, tz=UTC)
    return None


def project_stores(project_path: Path, pipeline_names: list[str] | None, env: str | None,
                   conf_source: str | None) -> list[tuple[Any, list[tuple[str, timedelta]]]]:
    """Each distinct intermediate store of the pipelines' DAGs, with the DAG folders to look in
    and each DAG's ``intermediate_retention``."""
    from kedro.framework.project import pipelines

    from airflow_kedro_mlflow.config import connections
    from airflow_kedro_mlflow.config.credentials import Credentials
    from airflow_kedro_mlflow.config.kedro_project import (
        bootstrap,
        check_env,
        conf_source_path,
        config_loader,
    )
    from airflow_kedro_mlflow.config.pipeline import configured_dag_id, load_pipeline_settings
    from airflow_kedro_mlflow.config.project_ref import KedroProject
    from airflow_kedro_mlflow.core.errors import ExportError
    from airflow_kedro_mlflow.core.ids import storage_key
    from airflow_kedro_mlflow.core.run_identity import RunIdentity
    from airflow_kedro_mlflow.runtime.intermediate import IntermediateStore

    project_path = Path(project_path).resolve()
    metadata = bootstrap(project_path)
    connections.register()
    check_env(project_path, env, conf_source)
    registered = sorted(pipelines)
    names = pipeline_names or registered
    unknown = [name for name in names if name not in registered]
    if unknown:
        raise ExportError(f"unknown pipeline '{unknown[0]}' (registered: {', '.join(registered)})")
    loader = config_loader(project_path, env, conf_source)
    conf_root = conf_source_path(project_path, conf_source)
    stores: dict[tuple[str, str | None], tuple[Any, list[tuple[str, timedelta]]]] = {}
    credentials = None
    for name in names:
        settings = load_pipeline_settings(loader, conf_root, env, name)
        key = (settings.intermediate_store, settings.intermediate_store_credentials)
        if key not in stores:
            if credentials is None and settings.intermediate_store_credentials:
                project = KedroProject(metadata.package_name, name, str(project_path),
                                       str(project_path / "dags"), env, conf_source)
                credentials = Credentials.load(project, project_path)
            # A store is opened for one run; only its root and filesystem serve here.
            store = IntermediateStore.for_settings(
                settings, project_path, RunIdentity("-", "-", datetime.now(UTC)),
                credentials)
            stores[key] = (store, [])
        dag_folder = storage_key(configured_dag_id(settings, metadata.package_name, name))
        retention = settings.intermediate_retention
        if all(folder != dag_folder for folder, _ in stores[key][1]):
            stores[key][1].append((dag_folder, retention))
    return list(stores.values())
