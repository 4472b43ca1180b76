"""The run-scoped store for data that crosses a task boundary but that the catalog keeps in memory.

In ``kedro run`` such datasets live in one process's memory; with one Airflow task per node they
must outlive the producing task. Each DAG run gets its own prefix
``<root>/<dag_id>/<run_id>/`` (each id as its ``storage_key``, one safe path segment whatever the
id), so concurrent runs never see each other's data, and the prefix is removed only when the run
succeeded, so a failed task can be cleared and rerun from where it was;
the data of a failed run carries an end record (``END_RECORD``) until a rerun starts, which
``kedro airflow clean-intermediate`` goes by.
Objects are pickled, as Kedro's MemoryDataset would hold any Python object.
"""

from __future__ import annotations

import json
import pickle
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fsspec
from kedro.io import AbstractDataset, DatasetError

from airflow_kedro_mlflow.config import PipelineSettings
from airflow_kedro_mlflow.ids import storage_key
from airflow_kedro_mlflow.removal import check_strictly_below
from airflow_kedro_mlflow.run_identity import RunIdentity
from airflow_kedro_mlflow.urls import redact_url

END_RECORD = "_dag_run_end.json"


class IntermediateStore:
    """The intermediate data of one DAG run under an fsspec URL or a local directory."""

    def __init__(self, root: str, run: RunIdentity, storage_options: dict[str, Any] | None = None):
        # A fresh filesystem object per store: fsspec's instance and listing caches would otherwise
        # let tasks that share a process (dag.test) see each other's stale listings.
        self.fs, base = fsspec.core.url_to_fs(
            root, skip_instance_cache=True, **(storage_options or {})
        )
        self.protocol = root.split("://", 1)[0] + "://" if "://" in root else ""
        self.run = run
        self.root = base.rstrip("/")
        """Where every DAG's runs are: ``<root>/<dag_id>/<run_id>/``."""
        self.dag_folder = f"{self.root}/{storage_key(run.dag_id)}"
        """Where this DAG's runs are: ``<root>/<dag_id>``."""
        self.prefix = f"{self.dag_folder}/{storage_key(run.run_id)}"
        """This run's folder: ``<root>/<dag_id>/<run_id>``."""

    @classmethod
    def for_settings(
        cls, settings: PipelineSettings, project_path: Path, run: RunIdentity, credentials: Any
    ) -> IntermediateStore:
        """The store airflow.yml configures (``intermediate_store``, with the fsspec options of
        the ``intermediate_store_credentials`` entry of credentials.yml, if named). Relative
        local locations are relative to the project root, like Kedro's filepaths."""
        options: dict[str, Any] = {}
        if settings.intermediate_store_credentials:
            options = credentials.entry(
                settings.intermediate_store_credentials,
                referenced_by="airflow.yml key 'intermediate_store_credentials'",
            )
        location = settings.intermediate_store
        if "://" not in location and not Path(location).is_absolute():
            location = str(project_path / location)
        return cls(location, run, options)

    @property
    def url(self) -> str:
        """Where this run's data is, as logs show it (without a URL's credentials)."""
        return redact_url(f"{self.protocol}{self.prefix}")

    def path_for(self, dataset_name: str, suffix: str = ".pickle") -> str:
        return f"{self.prefix}/{storage_key(dataset_name)}{suffix}"

    def dataset(self, dataset_name: str) -> IntermediateDataset:
        return IntermediateDataset(self, dataset_name)

    def files(self) -> list[str]:
        """The dataset files this run holds (empty when the run's prefix does not exist)."""
        if not self.fs.exists(self.prefix):
            return []
        return sorted(self.fs.find(self.prefix))

    def remove(self) -> None:
        """Remove everything of this run, and nothing else: the run's folder must be strictly
        inside the DAG's folder (``UnsafeRemovalError`` otherwise, before anything is removed)."""
        self._check_run_folder()
        if self.fs.exists(self.prefix):
            self.fs.rm(self.prefix, recursive=True)

    def _check_run_folder(self) -> None:
        check_strictly_below(self.dag_folder, self.root, self.protocol, "the intermediate store")
        check_strictly_below(self.prefix, self.dag_folder, self.protocol, "the DAG's folder")

    def record_end(self, unsuccessful: list[str]) -> None:
        """Note, beside the data kept after a failure, when the run ended and which steps failed:
        what ``kedro airflow clean-intermediate`` goes by to remove finished runs' data."""
        self.fs.makedirs(self.prefix, exist_ok=True)
        record = {"ended_at": datetime.now(UTC).isoformat(), "unsuccessful": unsuccessful,
                  "dag_id": self.run.dag_id, "run_id": self.run.run_id}
        with self.fs.open(f"{self.prefix}/{END_RECORD}", "w") as stream:
            stream.write(json.dumps(record))

    def clear_end(self) -> None:
        """The run is running again (cleared): its data is in use, not left over."""
        path = f"{self.prefix}/{END_RECORD}"
        self._check_run_folder()
        check_strictly_below(path, self.prefix, self.protocol, "the DAG run's folder")
        if self.fs.exists(path):
            self.fs.rm(path)


class IntermediateDataset(AbstractDataset):
    """A Kedro dataset stored in an ``IntermediateStore``, injected into a task's catalog."""

    def __init__(self, store: IntermediateStore, name: str):
        self._store = store
        self._name = name
        self._path = store.path_for(name)

    def load(self) -> Any:
        if not self._store.fs.exists(self._path):
            raise DatasetError(
                f"intermediate dataset '{self._name}' of DAG run '{self._store.run.run_id}' "
                f"not found at {redact_url(self._store.protocol + self._path)}: the task producing it must "
                f"succeed in this DAG run first"
            )
        with self._store.fs.open(self._path, "rb") as stream:
            return pickle.load(stream)  # noqa: S301 - written by this run's own tasks

    def save(self, data: Any) -> None:
        self._store.fs.makedirs(self._store.prefix, exist_ok=True)
        try:
            payload = pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            raise DatasetError(
                f"dataset '{self._name}' crosses an Airflow task boundary but cannot be pickled "
                f"({exc}): declare it in the catalog with a dataset that can save it"
            ) from exc
        temporary = f"{self._path}.{uuid.uuid4().hex}.tmp"  # tries never share a scratch file
        with self._store.fs.open(temporary, "wb") as stream:
            stream.write(payload)
        self._store.fs.mv(temporary, self._path)

    def _exists(self) -> bool:
        return bool(self._store.fs.exists(self._path))

    def _describe(self) -> dict[str, Any]:
        return {"path": redact_url(f"{self._store.protocol}{self._path}")}
