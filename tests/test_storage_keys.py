"""Fast tests: a DAG run's intermediate data stays in its own folder, whatever its run id (no
Airflow runs, a local store in tmp_path)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from airflow_kedro_mlflow.ids import storage_key
from airflow_kedro_mlflow.run_identity import RunIdentity
from airflow_kedro_mlflow.runtime.intermediate import IntermediateStore

DAG = "wine_classifier"
ORDINARY_RUN = "manual__2026-11-23T09:00:00+00:00"
AWKWARD = [".", "..", "...", ".hidden", "", "a/b", "../x", "a/../b", "/"]


def _store(root: Path, run_id: str) -> IntermediateStore:
    return IntermediateStore(str(root), RunIdentity(DAG, run_id, datetime(2026, 11, 23, tzinfo=UTC)))


@pytest.mark.parametrize("name", AWKWARD)
def test_every_name_is_one_plain_path_segment(name):
    key = storage_key(name)
    assert key not in ("", ".", "..")
    assert "/" not in key
    assert not key.startswith(".")
    assert storage_key(name) == key  # stable: a task of the same run finds the same folder


def test_awkward_names_keep_a_readable_part_and_stay_apart():
    keys = [storage_key(name) for name in AWKWARD]
    assert len(set(keys)) == len(keys)
    assert storage_key(".hidden").startswith("_hidden-")
    assert storage_key("a/b").startswith("a_b-")


@pytest.mark.parametrize("name, key", [
    # Keys of ids that existing deployments use must not change: the data of a DAG run in progress
    # during an upgrade is found again under them.
    ("wine_classifier", "wine_classifier"),
    ("model_input_table", "model_input_table"),
    ("nightly-run.2", "nightly-run.2"),
    ("manual__2026-11-23T09:00:00+00:00", "manual__2026-11-23T09_00_00_00_00-476cf0ba"),
    ("scheduled__2026-11-23T09:00:00+00:00", "scheduled__2026-11-23T09_00_00_00_00-b959430e"),
    ("manual__2026-11-23T09:00:00.123456+00:00_AbC123xy",
     "manual__2026-11-23T09_00_00.123456_00_00_AbC123xy-f8abac62"),
])
def test_keys_of_ordinary_ids_are_unchanged(name, key):
    assert storage_key(name) == key


def test_a_run_id_cannot_pose_as_another_runs_key():
    """Triggering a run whose id is another run's key must not give it that run's folder."""
    victim_key = storage_key(ORDINARY_RUN)
    assert storage_key(victim_key) != victim_key


def _save(store: IntermediateStore, name: str, value: object) -> None:
    store.dataset(name).save(value)


def test_removing_the_dot_run_leaves_every_other_runs_data(tmp_path):
    dot, dotdot, other = (_store(tmp_path, run) for run in (".", "..", ORDINARY_RUN))
    for store in (dot, dotdot, other):
        _save(store, "features", {"run": store.run.run_id})
    dag_folder = tmp_path / DAG
    for store in (dot, dotdot, other):  # each run has a folder of its own inside the DAG's
        assert Path(store.prefix).parent == dag_folder
        assert [Path(path).parent for path in store.files()] == [Path(store.prefix)]
    assert sorted(p.name for p in tmp_path.iterdir()) == [DAG]  # nothing above the DAG's folder

    dot.remove()  # the end task of the successful run "."

    assert dot.files() == []
    assert dotdot.dataset("features").load() == {"run": ".."}
    assert other.dataset("features").load() == {"run": ORDINARY_RUN}

    dotdot.remove()
    assert other.dataset("features").load() == {"run": ORDINARY_RUN}
