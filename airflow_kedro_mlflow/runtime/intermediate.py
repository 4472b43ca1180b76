"""The run-scoped store for data that crosses a task boundary but that the catalog keeps in memory.

In ``kedro run`` such datasets live in one process's memory; with one Airflow task per node they
must outlive the producing task. Each DAG run gets its own prefix
``<root>/<dag_id>/<run_id>/`` (each id as its ``storage_key``, one safe path segment whatever the
id), so concurrent runs never see each other's data, and the prefix is removed only when the run
succeeded, so a failed task can be cleared and rerun from where it was;
the data of a failed run carries an end record (``END_RECORD``) until a rerun starts, which
``kedro airflow clean-intermediate`` goes by.
Objects are pickled, as Kedro's MemoryDataset would hold any Python object.

Unpickling runs code, and the store is a predictable path that others may be able to write (a
shared bucket), so every file the tasks read back is signed when written and checked before a
byte of it is used (``write_signed``, ``read_signed``): ``SIGNATURE_HEADER``, then an
HMAC-SHA256 under the DAG run's key (``intermediate_key``, never kept in the store) of DAG id,
run id, kind, dataset name and payload, then the payload. A file without that header (written by
something else, or before this package signed intermediate data) or with a signature that does
not match (another dataset's or another run's, or tampered) is refused with a ``DatasetError``
before anything is unpickled. A payload is read whole into memory and checked there: what is
unpickled is exactly what was checked, even if the file changes meanwhile.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import pickle
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fsspec
from kedro.io import AbstractDataset, DatasetError

from airflow_kedro_mlflow.config.airflow_yml import PipelineSettings
from airflow_kedro_mlflow.core.ids import START_TASK_ID, storage_key
from airflow_kedro_mlflow.core.removal import check_strictly_below
from airflow_kedro_mlflow.core.run_identity import RunIdentity
from airflow_kedro_mlflow.core.urls import redact_url
from airflow_kedro_mlflow.runtime import intermediate_key
from airflow_kedro_mlflow.runtime.intermediate_key import KEY_ENV, KEY_VARIABLE, encode_parts

END_RECORD = "_dag_run_end.json"
SIGNATURE_HEADER = b"airflow-kedro-mlflow intermediate hmac-sha256 v1\n"
"""How a signed file starts; the 32 bytes of its HMAC-SHA256 follow, then the payload."""
TAG_LENGTH = hashlib.sha256().digest_size
PICKLE = "pickle"
"""The kind of a dataset's payload (part of what is signed: a file of one kind is not another)."""
_MAC_CONTEXT = b"airflow-kedro-mlflow intermediate payload v1"


class IntermediateStore:
    """The intermediate data of one DAG run under an fsspec URL or a local directory."""

    def __init__(self, root: str, run: RunIdentity, storage_options: dict[str, Any] | None = None,
                 key: bytes | None = None):
        """``key``: the run's signing key; by default looked up when first needed
        (``intermediate_key.run_key``), so tasks that only list or remove data need none."""
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
        self._key = key

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

    def signing_key(self) -> bytes:
        """The DAG run's key (looked up once per store)."""
        if self._key is None:
            self._key = intermediate_key.run_key(self.run.dag_id, self.run.run_id)
        return self._key

    def ensure_key(self) -> None:
        """The start task's part: a key exists before any node task needs one (generated and
        stored as an Airflow Variable if none is configured)."""
        if self._key is None:
            self._key = intermediate_key.run_key(self.run.dag_id, self.run.run_id, generate=True)

    def _tag(self, name: str, kind: str, payload: bytes | memoryview) -> bytes:
        run = self.run
        mac = hmac.new(self.signing_key(), encode_parts(_MAC_CONTEXT, run.dag_id, run.run_id, kind,
                                                        name), hashlib.sha256)
        mac.update(payload)
        return mac.digest()

    def write_signed(self, path: str, name: str, kind: str, payload: bytes) -> None:
        """Write ``payload`` of dataset ``name`` to ``path``, signed, atomically."""
        header = SIGNATURE_HEADER + self._tag(name, kind, payload)  # no key: nothing written
        self.fs.makedirs(self.prefix, exist_ok=True)
        temporary = f"{path}.{uuid.uuid4().hex}.tmp"  # tries never share a scratch file
        with self.fs.open(temporary, "wb") as stream:
            stream.write(header)
            stream.write(payload)
        self.fs.mv(temporary, path)

    def read_signed(self, path: str, name: str, kind: str, what: str | None = None) -> memoryview:
        """The payload of the signed file at ``path``, once its signature is checked."""
        self.signing_key()  # no key: fail naming where to set one, before reading anything
        with self.fs.open(path, "rb") as stream:
            data = stream.read()
        return self.verify(data, name, kind, path, what)

    def verify(self, data: bytes, name: str, kind: str, path: str,
               what: str | None = None) -> memoryview:
        """The payload inside ``data`` (a signed file's bytes); ``DatasetError`` unless its
        signature is this run's for dataset ``name`` and kind ``kind`` (compared in constant
        time). ``what`` names the file in the error (default: the intermediate dataset)."""
        start = len(SIGNATURE_HEADER) + TAG_LENGTH
        if not data.startswith(SIGNATURE_HEADER):
            reason = "it is not signed (written by something else, or before this version of " \
                     "airflow-kedro-mlflow signed intermediate data)"
        elif len(data) < start:
            reason = "its signature is truncated"
        else:
            payload = memoryview(data)[start:]
            tag = data[len(SIGNATURE_HEADER):start]
            if hmac.compare_digest(tag, self._tag(name, kind, payload)):
                return payload
            reason = ("its signature does not match (tampered, written for another dataset or "
                      "DAG run, or under another key)")
        raise DatasetError(self.untrusted(what or f"intermediate dataset '{name}'", path, reason))

    def untrusted(self, what: str, path: str, reason: str) -> str:
        """The error for a file of this run's store that is refused."""
        return (
            f"{what} of DAG run '{self.run.run_id}' (DAG '{self.run.dag_id}') at "
            f"{self.protocol}{path} is not trusted: {reason}. It was not loaded and nothing in it "
            f"ran. The tasks of a DAG run sign what they write with the run's key (from "
            f"{KEY_ENV} or the Airflow Variable {KEY_VARIABLE}); unsigned data of a run started "
            f"before signing existed is refused too. If nobody tampered with the store, clear "
            f"the DAG run from its start task ({START_TASK_ID}) to recompute its data"
        )

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
        payload = self._store.read_signed(self._path, self._name, PICKLE)
        return pickle.loads(payload)  # noqa: S301 - signed by this run's own tasks, checked above

    def save(self, data: Any) -> None:
        try:
            payload = pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            raise DatasetError(
                f"dataset '{self._name}' crosses an Airflow task boundary but cannot be pickled "
                f"({exc}): declare it in the catalog with a dataset that can save it"
            ) from exc
        self._store.write_signed(self._path, self._name, PICKLE, payload)

    def _exists(self) -> bool:
        return bool(self._store.fs.exists(self._path))

    def _describe(self) -> dict[str, Any]:
        return {"path": redact_url(f"{self._store.protocol}{self._path}")}
