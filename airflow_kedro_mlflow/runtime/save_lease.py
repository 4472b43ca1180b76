"""At most one try of a task inside a save at any time: a retry waits for an orphan's save.

A try whose Airflow supervisor died lives on as an orphan (``try_guard``): it stops before its
next save, but a save it is already inside goes on, and Airflow may meanwhile start the retry.
Two tries then write the same outputs at once: the orphan's write, if it lands last, replaces the
retry's (an intermediate dataset's move, an unversioned file), and downstream tasks read data of
a try that never succeeded. So each save is done under a lease in the DAG run's intermediate
store: right before it saves, a try writes ``<run>/_saving/<task>/try-<n>.json`` and keeps it
fresh (a heartbeat every few seconds) until the save returns; a later try waits, before its
own saves, until no earlier try holds a fresh one. An orphan's save therefore ends before the
retry's starts, and the retry's output is the one that stays. A try killed inside a save leaves
its lease behind, stale after ``STALE_AFTER_S``, which is as long as the retry waits for it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from datetime import UTC, datetime
from typing import Any

from airflow_kedro_mlflow.core.errors import AirflowKedroError
from airflow_kedro_mlflow.core.ids import storage_key
from airflow_kedro_mlflow.runtime.try_guard import TryGuard

log = logging.getLogger(__name__)

FOLDER = "_saving"
HEARTBEAT_S = 5.0
STALE_AFTER_S = 30.0
"""A lease not refreshed for this long belongs to a try that died inside its save."""
MAX_WAIT_S = 900.0
"""A save of an earlier try still running after this long fails this try (Airflow retries it)."""


class SaveLeaseTimeoutError(AirflowKedroError):
    """An earlier try of the task has held its save lease for too long."""


class SaveLease:
    """The save lease of one task try (``store``: the DAG run's ``IntermediateStore``)."""

    def __init__(self, store: Any, task_id: str, try_number: int, guard: TryGuard) -> None:
        self._fs = store.fs
        self._folder = f"{store.prefix}/{FOLDER}/{storage_key(task_id)}"
        self._try = try_number
        self._own = f"{self._folder}/try-{try_number}.json"
        self._guard = guard
        self._dataset: str | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None

    def enter(self, dataset_name: str) -> None:
        """Right before saving ``dataset_name``: wait out earlier tries' saves, then hold the
        lease (refreshed in the background) until ``leave``."""
        self._wait_for_earlier_tries(dataset_name)
        self._guard.check(before=f"saving '{dataset_name}'")
        with self._lock:
            self._dataset = dataset_name
            if self._heartbeat is None:  # the first save of this try: a local store needs the folder
                self._fs.makedirs(self._folder, exist_ok=True)
            self._write()
        if self._heartbeat is None:
            self._heartbeat = threading.Thread(target=self._beat, name="akm-save-lease",
                                               daemon=True)
            self._heartbeat.start()

    def leave(self) -> None:
        """The save returned (or failed): release the lease."""
        with self._lock:
            if self._dataset is None:
                return
            self._dataset = None
            with contextlib.suppress(FileNotFoundError):
                self._fs.rm(self._own)

    def close(self) -> None:
        """The try is over: release the lease and stop the heartbeat."""
        self.leave()
        self._stop.set()

    def _write(self) -> None:
        record = {"try_number": self._try, "dataset": self._dataset,
                  "heartbeat": datetime.now(UTC).isoformat()}
        with self._fs.open(self._own, "w") as stream:
            stream.write(json.dumps(record))

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            with self._lock:
                if self._dataset is not None:
                    with contextlib.suppress(Exception):  # the next beat tries again
                        self._write()

    def _wait_for_earlier_tries(self, dataset_name: str) -> None:
        if self._try <= 1:
            return  # the task's first try in this DAG run: no earlier one can be saving
        started, said = time.monotonic(), False
        while True:
            holders = self._fresh_earlier_leases()
            if not holders:
                return
            waited = time.monotonic() - started
            if waited > MAX_WAIT_S:
                raise SaveLeaseTimeoutError(
                    f"try {self._try}: try {holders[0]['try_number']} of this task has been saving "
                    f"'{holders[0].get('dataset')}' for over {MAX_WAIT_S:.0f} s (its lease in "
                    f"{self._folder} is still refreshed); not saving '{dataset_name}' over it")
            if not said:
                log.warning("Waiting for try %s of this task, which is still saving '%s' "
                            "(its Airflow supervisor is gone), before saving '%s'",
                            holders[0]["try_number"], holders[0].get("dataset"), dataset_name)
                said = True
            self._guard.check(before=f"saving '{dataset_name}'")
            time.sleep(1.0)

    def _fresh_earlier_leases(self) -> list[dict[str, Any]]:
        try:
            paths = self._fs.ls(self._folder, detail=False, refresh=True)
        except FileNotFoundError:
            return []
        except TypeError:  # a filesystem without listing caches
            paths = self._fs.ls(self._folder, detail=False)
        now = datetime.now(UTC)
        fresh = []
        for path in paths:
            name = str(path).rstrip("/").rsplit("/", 1)[-1]
            if not name.startswith("try-") or name == f"try-{self._try}.json":
                continue
            try:
                with self._fs.open(path, "r") as stream:
                    record = json.loads(stream.read())
                beat = datetime.fromisoformat(record["heartbeat"])
            except (FileNotFoundError, ValueError, KeyError):
                continue  # released meanwhile, or not ours to judge
            if int(record.get("try_number", 0)) < self._try and (
                    (now - beat).total_seconds() < STALE_AFTER_S):
                fresh.append(record)
        return sorted(fresh, key=lambda r: int(r["try_number"]))
