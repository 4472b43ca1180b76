"""Let any try of a node task save its outputs again under the DAG run's save version.

All tasks of a DAG run save versioned datasets under one save version, and Kedro refuses to save
a version whose path exists. A try that saved an output and then failed (killed while logging the
model, MLflow down, a clear of a finished run) would leave that path behind, and every later try
of the task would fail on it. So right before a node try saves a versioned output, the path of
*this DAG run's* version of that dataset is removed if an earlier try left it: only
``<filepath>/<the run's save version>/``, never another run's version. Downstream tasks run only
after this try succeeded, so they read what it wrote.

Each save is also where a try that Airflow has abandoned (see ``try_guard``) stops.
"""

from __future__ import annotations

import logging
from typing import Any

from kedro.framework.hooks import hook_impl
from kedro.io import AbstractVersionedDataset, DatasetError

from airflow_kedro_mlflow.compat.kedro import (
    filesystem_of,
    invalidate_cache,
    path_exists,
    version_of,
    versioned_path,
    wrapped_dataset,
)
from airflow_kedro_mlflow.core.urls import redact_url
from airflow_kedro_mlflow.runtime.save_lease import SaveLease
from airflow_kedro_mlflow.runtime.try_guard import TryGuard

log = logging.getLogger(__name__)


def versioned_dataset(dataset: Any, depth: int = 3) -> AbstractVersionedDataset | None:
    """The versioned dataset doing the saving: ``dataset`` itself or one it wraps."""
    while dataset is not None and depth >= 0:
        if isinstance(dataset, AbstractVersionedDataset) and version_of(dataset) is not None:
            return dataset
        dataset, depth = wrapped_dataset(dataset), depth - 1
    return None


def clear_own_version(name: str, dataset: Any) -> str | None:
    """Remove the folder of the save version ``dataset`` is about to write, if it exists.

    Returns the removed path. The folder is ``<filepath>/<save version>``, which holds only what
    one save of that version wrote.
    """
    versioned = versioned_dataset(dataset)
    if versioned is None:
        return None
    version = versioned.resolve_save_version()
    if version is None:
        return None
    target = versioned_path(versioned, version)
    if not path_exists(versioned, str(target)):
        return None
    folder = str(target.parent)
    fs = filesystem_of(versioned)
    if fs is None:
        raise DatasetError(
            f"dataset '{name}': {redact_url(str(target))} was saved by an earlier try of this DAG "
            f"run and {type(versioned).__name__} has no filesystem to replace it with; remove "
            f"{redact_url(folder)}"
        )
    fs.rm(folder, recursive=True)
    invalidate_cache(versioned)
    return folder


class OwnedOutputsHooks:
    """Kedro hooks of one node try: replace this run's version of each versioned output, each
    save under the task's save lease (``save_lease``: never two tries of the task saving at
    once)."""

    def __init__(self, guard: TryGuard, lease: SaveLease | None = None) -> None:
        self._guard = guard
        self._lease = lease
        self._catalog: Any = None

    @hook_impl
    def after_catalog_created(self, catalog: Any) -> None:
        self._catalog = catalog

    @hook_impl
    def before_dataset_saved(self, dataset_name: str) -> None:
        self._guard.check(before=f"saving '{dataset_name}'")
        if self._lease is not None:
            self._lease.enter(dataset_name)
        if self._catalog is None or dataset_name not in self._catalog:
            return
        removed = clear_own_version(dataset_name, self._catalog.get(dataset_name))
        if removed:
            log.warning(
                "Replacing '%s' at %s, saved by an earlier try of this DAG run",
                dataset_name, redact_url(removed),
            )

    @hook_impl
    def after_dataset_saved(self) -> None:
        if self._lease is not None:
            self._lease.leave()

    @hook_impl
    def on_node_error(self) -> None:
        if self._lease is not None:
            self._lease.leave()
