"""Fast tests: a DAG run's intermediate data stays in its own folder, whatever its run id, and no
removal reaches outside the folder it must stay in (no Airflow runs, a local store in tmp_path)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from airflow_kedro_mlflow.core.errors import AirflowKedroError, UnsafeRemovalError
from airflow_kedro_mlflow.core.ids import storage_key
from airflow_kedro_mlflow.core.removal import is_strictly_below
from airflow_kedro_mlflow.core.run_identity import RunIdentity
from airflow_kedro_mlflow.runtime import intermediate
from airflow_kedro_mlflow.runtime.housekeeping import remove_run_folders, run_folders
from airflow_kedro_mlflow.runtime.intermediate import IntermediateStore

DAG = "wine_classifier"
ORDINARY_RUN = "manual__2026-11-23T09:00:00+00:00"
AWKWARD = [".", "..", "...", ".hidden", "", "a/b", "../x", "a/../b", "/"]


@pytest.fixture(autouse=True)
def _intermediate_key(monkeypatch):
    """The deployment key the tasks sign intermediate data with, as set on workers."""
    from airflow_kedro_mlflow.runtime.intermediate_key import KEY_ENV

    monkeypatch.setenv(KEY_ENV, "a-test-key-of-sixteen-chars-or-more")


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


@pytest.mark.parametrize("path, folder, below", [
    ("/data/dag/run", "/data/dag", True),
    ("/data/dag/run/", "/data/dag/", True),
    ("/data/dag/run/_dag_run_end.json", "/data/dag/run", True),
    ("/proj/../shared/dag/run", "/proj/../shared/dag", True),  # a configured root may say ..
    ("bucket/dag/run", "bucket/dag", True),
    ("/data/dag", "/data/dag", False),  # the folder itself
    ("/data/dag/", "/data/dag", False),
    ("/data/dag/.", "/data/dag", False),
    ("/data/dag/..", "/data/dag", False),
    ("/data/dag/run/../other", "/data/dag", False),
    ("/data/dag//", "/data/dag", False),  # an empty name listed by an object store
    ("/data/dagger/run", "/data/dag", False),  # a sibling sharing a prefix of the name
    ("/data", "/data/dag", False),
    ("/data/dag/run", "", False),
])
def test_strictly_below(path, folder, below):
    assert is_strictly_below(path, folder) is below


def test_a_store_whose_run_folder_is_the_dags_folder_refuses_to_remove_it(tmp_path, monkeypatch):
    """As the run "." was stored before run ids were escaped: its folder would be the DAG's."""
    _save(_store(tmp_path, ORDINARY_RUN), "features", 1)
    with monkeypatch.context() as old_keys:
        old_keys.setattr(intermediate, "storage_key", lambda name: name)
        unsafe = _store(tmp_path, ".")
        _save(unsafe, "model", 2)
        for remove in (unsafe.remove, unsafe.clear_end):
            with pytest.raises(UnsafeRemovalError,
                               match="refusing to remove .*wine_classifier/\\.") as refused:
                remove()
            assert isinstance(refused.value, AirflowKedroError)  # the CLI shows its one line
            assert f"not strictly inside the DAG's folder {tmp_path / DAG}" in str(refused.value)
    assert _store(tmp_path, ORDINARY_RUN).dataset("features").load() == 1
    assert (tmp_path / DAG / "model.pickle").exists()


def test_clean_up_refuses_a_listed_path_outside_a_run_folder_and_removes_nothing(tmp_path):
    old, kept = _store(tmp_path, "old-run"), _store(tmp_path, ORDINARY_RUN)
    _save(old, "features", 1)
    _save(kept, "features", 2)
    (listed,) = [f for f in run_folders(old, [DAG]) if f.run_folder == "old-run"]
    # An object store listing an empty name under the DAG's folder (a key "<dag>//x").
    whole_dag = replace(listed, path=f"{tmp_path}/{DAG}/", run_folder="")

    with pytest.raises(UnsafeRemovalError, match=f"refusing to remove {tmp_path}/{DAG}/:"):
        remove_run_folders([(old, listed), (old, whole_dag)])
    assert old.dataset("features").load() == 1  # checked all before removing any
    assert kept.dataset("features").load() == 2

    remove_run_folders([(old, listed)])
    assert old.files() == []
    assert kept.dataset("features").load() == 2


def test_clean_intermediate_command_refuses_with_one_line_naming_the_path(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from airflow_kedro_mlflow import cli
    from airflow_kedro_mlflow.runtime import housekeeping

    old = _store(tmp_path, "old-run")
    _save(old, "features", 1)
    old.record_end(["train"])

    def listing(store, dag_folders):  # the real listing, plus the DAG's folder as an empty name
        folders = run_folders(store, dag_folders)
        return [*folders, replace(folders[0], path=f"{tmp_path}/{DAG}/", run_folder="")]

    monkeypatch.setattr(housekeeping, "project_stores",
                        lambda *args: [(old, [(DAG, timedelta(days=7))])])
    monkeypatch.setattr(housekeeping, "run_folders", listing)
    result = CliRunner().invoke(
        cli.airflow_commands, ["clean-intermediate", "--older-than", "0m", "--delete"],
        obj=type("Metadata", (), {"project_path": tmp_path})(),
    )
    assert result.exit_code == 1
    assert f"Error: refusing to remove {tmp_path}/{DAG}/: it is not strictly inside" in result.output
    assert old.dataset("features").load() == 1
