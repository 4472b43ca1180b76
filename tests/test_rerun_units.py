"""Fast tests of the rerun-safety rules, on real Kedro datasets and plain values (no DAG runs)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from kedro.io import DatasetError, Version
from kedro_datasets.json import JSONDataset

from airflow_kedro_mlflow.config.credentials import is_locator
from airflow_kedro_mlflow.core.run_identity import RunIdentity
from airflow_kedro_mlflow.runtime.owned_outputs import clear_own_version
from airflow_kedro_mlflow.runtime.tracking import TAG_CLEAR_NUMBER, TAG_RUN_STARTED, same_dag_run

STARTED = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def _run(clear_number: int = 0, start: datetime = STARTED) -> RunIdentity:
    return RunIdentity("dag", "manual__1", STARTED, start_date=start, clear_number=clear_number)


def _tags(clear_number: int = 0, start: datetime = STARTED) -> dict[str, str]:
    return {TAG_CLEAR_NUMBER: str(clear_number), TAG_RUN_STARTED: start.isoformat()}


@pytest.mark.parametrize("recorded, current, same", [
    ((0, STARTED), (0, STARTED), True),  # the start task retried
    ((0, STARTED), (1, STARTED + timedelta(hours=1)), True),  # the run cleared since
    ((2, STARTED), (3, STARTED + timedelta(hours=1)), True),  # cleared once more
    ((0, STARTED), (0, STARTED + timedelta(hours=1)), False),  # deleted, recreated with the id
    ((2, STARTED), (0, STARTED + timedelta(hours=1)), False),  # same, the old one was cleared
])
def test_a_parent_belongs_to_the_dag_run_that_opened_it_or_its_clears(recorded, current, same):
    assert same_dag_run(_tags(*recorded), _run(*current)) is same


def test_a_parent_without_recorded_identity_is_reused():
    """Parents opened before runs recorded their clear number (older versions) stay in use."""
    assert same_dag_run({}, _run())


@pytest.mark.parametrize("key, value, readable", [
    ("endpoint_url", "http://127.0.0.1:9000", True),
    ("MLFLOW_S3_ENDPOINT_URL", "http://minio:9000", True),
    ("region_name", "eu-west-1", True),
    ("AWS_DEFAULT_REGION", "eu-west-1", True),
    ("bucket", "wine-classifier", True),
    ("key", "AKIAEXAMPLE", False),
    ("secret", "s3cr3t-value", False),
    ("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE", False),
    ("AWS_SECRET_ACCESS_KEY", "s3cr3t-value", False),
    ("MLFLOW_TRACKING_TOKEN", "token-value", False),
    ("MLFLOW_TRACKING_URI", "https://user:pass@mlflow.example", False),  # credentials inside
    ("token_url", "https://auth.example/token", False),
    (None, "a value with no key", False),
])
def test_only_values_that_locate_a_service_stay_readable(key, value, readable):
    assert is_locator(key, value) is readable


def _versioned(tmp_path, save: str) -> JSONDataset:
    return JSONDataset(filepath=str(tmp_path / "model.json"), version=Version(None, save))


def test_a_try_replaces_its_own_runs_version_and_no_other(tmp_path):
    _versioned(tmp_path, "run-a").save({"try": 1})
    _versioned(tmp_path, "run-b").save({"other": "run"})
    with pytest.raises(DatasetError, match="must not exist"):  # what a retry met before
        _versioned(tmp_path, "run-a").save({"try": 2})

    retry = _versioned(tmp_path, "run-a")
    assert clear_own_version("model", retry) == str(tmp_path / "model.json" / "run-a")
    retry.save({"try": 2})
    def load(version: str) -> dict:
        return JSONDataset(filepath=str(tmp_path / "model.json"), version=Version(version, None)).load()

    assert load("run-a") == {"try": 2}
    assert load("run-b") == {"other": "run"}
    assert clear_own_version("model", _versioned(tmp_path, "run-c")) is None  # nothing to replace


def test_a_wrapped_versioned_dataset_is_found(tmp_path):
    from airflow_kedro_mlflow.datasets import MlflowModelDataset

    first = MlflowModelDataset(dataset={"type": "json.JSONDataset",
                                        "filepath": str(tmp_path / "m.json")},
                               version=Version(None, "run-a"))
    first.save({"model": 1})  # no MLflow run is active: only the wrapped dataset saves
    retry = MlflowModelDataset(dataset={"type": "json.JSONDataset",
                                        "filepath": str(tmp_path / "m.json")},
                               version=Version(None, "run-a"))
    assert clear_own_version("m", retry)
    retry.save({"model": 2})
    assert retry.load() == {"model": 2}
