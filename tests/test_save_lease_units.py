"""Fast tests of the save lease on a local intermediate store: a retry waits for an earlier try
that is inside a save, and not for one that died there."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime

from airflow_kedro_mlflow.core.run_identity import RunIdentity
from airflow_kedro_mlflow.runtime import save_lease
from airflow_kedro_mlflow.runtime.intermediate import IntermediateStore
from airflow_kedro_mlflow.runtime.save_lease import SaveLease
from airflow_kedro_mlflow.runtime.try_guard import TryGuard

RUN = RunIdentity("dag", "manual__1", datetime(2026, 12, 1, tzinfo=UTC))


def _lease(tmp_path, try_number: int) -> SaveLease:
    store = IntermediateStore(str(tmp_path / "store"), RUN)
    return SaveLease(store, "group.task", try_number, TryGuard(f"try {try_number}"))


def test_a_retry_saves_only_after_the_earlier_tries_save_ended(tmp_path):
    orphan, retry = _lease(tmp_path, 1), _lease(tmp_path, 2)
    orphan.enter("model")  # a local store: the lease's folder is made on the first save
    saved_at: list[float] = []
    waiting = threading.Thread(target=lambda: (retry.enter("model"), saved_at.append(time.monotonic())))
    waiting.start()
    time.sleep(2.5)
    assert not saved_at  # still waiting: try 1 is inside its save
    left = time.monotonic()
    orphan.leave()
    waiting.join(timeout=10)
    assert saved_at and saved_at[0] >= left
    retry.close()
    orphan.close()


def test_a_lease_left_by_a_try_killed_inside_its_save_goes_stale(tmp_path, monkeypatch):
    dead = _lease(tmp_path, 1)
    dead.enter("model")
    dead._stop.set()  # killed: no more heartbeats
    record = json.loads((tmp_path / "store" / "dag" / "manual__1" / "_saving" / "group.task"
                         / "try-1.json").read_text())
    assert record["dataset"] == "model"
    monkeypatch.setattr(save_lease, "STALE_AFTER_S", 1.0)
    time.sleep(1.5)
    started = time.monotonic()
    retry = _lease(tmp_path, 2)
    retry.enter("model")
    assert time.monotonic() - started < 2
    retry.close()


def test_the_first_try_never_waits(tmp_path):
    later = _lease(tmp_path, 3)
    later.enter("x")  # holds a fresh lease of a later try (a clear's try)
    first = _lease(tmp_path, 1)
    first.enter("x")
    first.close()
    later.close()
