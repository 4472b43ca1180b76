"""Intermediate data is authenticated before it is read: what the run's tasks did not sign (a
file planted in a shared bucket, a payload from before signing, one copied under another name or
from another run) is refused before a byte of it is unpickled."""

from __future__ import annotations

import os
import pickle
import shutil
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kedro.io import DatasetError

from airflow_kedro_mlflow.config import credentials
from airflow_kedro_mlflow.core.run_identity import RunIdentity
from airflow_kedro_mlflow.runtime import intermediate_key
from airflow_kedro_mlflow.runtime.intermediate import (
    SIGNATURE_HEADER,
    TAG_LENGTH,
    IntermediateStore,
)
from airflow_kedro_mlflow.runtime.intermediate_key import (
    KEY_ENV,
    KEY_VARIABLE,
    RUN_KEY_ENV,
    IntermediateKeyError,
)
from airflow_kedro_mlflow.runtime.model_uri_handoff import SUFFIX, ModelUriHandoffHooks

KEY = "test-deployment-key-0123456789abcdef"
RUN_AFTER = datetime(2026, 12, 1, 10, tzinfo=UTC)


class Plant:
    """A pickle whose unpickling writes ``marker``: what an attacker who can write the store
    would plant."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.marker, "w"))


@pytest.fixture(autouse=True)
def deployment_key(monkeypatch):
    """Each test starts with the key in the workers' environment and no Variable, nothing handed
    over to a runner."""
    monkeypatch.setenv(KEY_ENV, KEY)
    monkeypatch.delenv(RUN_KEY_ENV, raising=False)
    monkeypatch.setattr(intermediate_key, "_variable_get", lambda: None)
    monkeypatch.setattr(intermediate_key, "_handed_over", {})


def _store(root: Path, run_id: str = "manual__1", dag_id: str = "relay") -> IntermediateStore:
    return IntermediateStore(str(root), RunIdentity(dag_id, run_id, RUN_AFTER, task_id="t"))


def _file(store: IntermediateStore, name: str, suffix: str = ".pickle") -> Path:
    return Path(store.path_for(name, suffix))


def _malicious(marker: Path) -> bytes:
    payload = pickle.dumps(Plant(marker))
    control = marker.with_name(marker.name + ".control")
    pickle.loads(pickle.dumps(Plant(control)))  # the gadget works: unpickled, it writes its file
    assert control.exists()
    control.unlink()
    return payload


def _refused(store: IntermediateStore, name: str, reason: str) -> str:
    with pytest.raises(DatasetError) as raised:
        store.dataset(name).load()
    message = str(raised.value)
    assert f"intermediate dataset '{name}' of DAG run '{store.run.run_id}' (DAG 'relay')" in message
    assert "is not trusted" in message and reason in message
    assert "nothing in it ran" in message and "kedro_run_start" in message
    return message


def test_a_round_trip_is_signed_and_reads_back(tmp_path):
    store = _store(tmp_path)
    store.dataset("numbers").save({"values": [1, 2, 3]})

    raw = _file(store, "numbers").read_bytes()
    assert raw.startswith(SIGNATURE_HEADER)
    assert pickle.loads(raw[len(SIGNATURE_HEADER) + TAG_LENGTH:]) == {"values": [1, 2, 3]}
    assert _store(tmp_path).dataset("numbers").load() == {"values": [1, 2, 3]}  # another task
    assert not [p for p in tmp_path.rglob("*.tmp")]


def test_a_tampered_payload_is_refused_before_it_is_unpickled(tmp_path):
    store = _store(tmp_path)
    store.dataset("numbers").save([1, 2, 3])
    path = _file(store, "numbers")
    genuine = path.read_bytes()
    signature = genuine[: len(SIGNATURE_HEADER) + TAG_LENGTH]
    marker = tmp_path / "pwned"
    path.write_bytes(signature + _malicious(marker))  # a genuine signature, another payload

    _refused(store, "numbers", "its signature does not match")
    assert not marker.exists()

    path.write_bytes(genuine[:-1] + bytes([genuine[-1] ^ 1]))  # one bit of the payload flipped
    _refused(store, "numbers", "its signature does not match")


def test_an_unsigned_payload_is_refused_saying_so(tmp_path):
    """What a planted file, or one written before signing existed, looks like: a bare pickle."""
    store = _store(tmp_path)
    marker = tmp_path / "pwned"
    path = _file(store, "numbers")
    path.parent.mkdir(parents=True)
    path.write_bytes(_malicious(marker))

    message = _refused(store, "numbers", "it is not signed")
    assert "before this version of airflow-kedro-mlflow signed intermediate data" in message
    assert "clear the DAG run from its start task (kedro_run_start)" in message
    assert not marker.exists()

    path.write_bytes(SIGNATURE_HEADER + b"short")  # a header and no room for a signature
    _refused(store, "numbers", "its signature is truncated")
    path.write_bytes(b"")
    _refused(store, "numbers", "it is not signed")


def test_a_payload_copied_under_another_name_or_into_another_run_is_refused(tmp_path):
    store = _store(tmp_path)
    store.dataset("evens").save([2, 4])
    store.dataset("odds").save([1, 3])

    shutil.copyfile(_file(store, "evens"), _file(store, "odds"))  # replayed under another name
    _refused(store, "odds", "its signature does not match")

    other = _store(tmp_path, run_id="manual__2")
    other.dataset("evens").save([6, 8])
    shutil.copyfile(_file(store, "evens"), _file(other, "evens"))  # replayed into another run
    message = _refused(other, "evens", "its signature does not match")
    assert "manual__2" in message

    shutil.copyfile(_file(store, "evens"), tmp_path / "elsewhere.pickle")
    elsewhere = _store(tmp_path, dag_id="relay_copy")  # same run id, another DAG
    _file(elsewhere, "evens").parent.mkdir(parents=True)
    shutil.copyfile(tmp_path / "elsewhere.pickle", _file(elsewhere, "evens"))
    with pytest.raises(DatasetError, match="not trusted: its signature does not match"):
        elsewhere.dataset("evens").load()


def test_data_signed_under_another_key_is_refused(tmp_path, monkeypatch):
    """A rotated key: what the old one signed no longer verifies (rotate between runs)."""
    store = _store(tmp_path)
    store.dataset("numbers").save([1])
    monkeypatch.setenv(KEY_ENV, "another-deployment-key-fedcba9876543210")
    _refused(_store(tmp_path), "numbers", "its signature does not match")


def test_the_model_uri_handoff_refuses_a_planted_or_copied_file(tmp_path):
    store = _store(tmp_path)
    model = ModelDataset()
    producer = ModelUriHandoffHooks(store)
    producer.after_catalog_created({"model": model, "other_model": ModelDataset()})
    model._last_saved_model_uri = "models:/m-genuine"
    producer.after_dataset_saved("model")
    assert _file(store, "model", SUFFIX).read_bytes().startswith(SIGNATURE_HEADER)

    catalog = {"model": ModelDataset(), "other_model": ModelDataset()}
    ModelUriHandoffHooks(_store(tmp_path)).after_catalog_created(catalog)  # a downstream task
    assert catalog["model"]._last_saved_model_uri == "models:/m-genuine"

    planted = _file(store, "other_model", SUFFIX)
    planted.write_text("other_model\nmodels:/m-attacker")  # as the hand-off was written unsigned
    with pytest.raises(DatasetError) as raised:
        ModelUriHandoffHooks(_store(tmp_path)).after_catalog_created(
            {"model": ModelDataset(), "other_model": ModelDataset()})
    message = str(raised.value)
    assert ("the model URI hand-off of dataset 'other_model' of DAG run 'manual__1' (DAG 'relay')"
            in message)
    assert "is not trusted: it is not signed" in message

    shutil.copyfile(_file(store, "model", SUFFIX), planted)  # the genuine file, another name
    with pytest.raises(DatasetError, match=r"hand-off file 'other_model.model_uri' .* not trusted: "
                                           r"it does not hold the hand-off of a dataset of that "
                                           r"name \(it names 'model'\)"):
        ModelUriHandoffHooks(_store(tmp_path)).after_catalog_created({})

    genuine = _file(store, "model", SUFFIX).read_bytes()
    forged = genuine.replace(b"models:/m-genuine", b"models:/m-attacker")
    planted.unlink()
    _file(store, "model", SUFFIX).write_bytes(forged)
    with pytest.raises(DatasetError, match="dataset 'model' .* its signature does not match"):
        ModelUriHandoffHooks(_store(tmp_path)).after_catalog_created({"model": ModelDataset()})


class ModelDataset:
    """What the hand-off looks for in kedro-mlflow's MlflowModelTrackingDataset."""

    def __init__(self) -> None:
        self._last_saved_model_uri: str | None = None
        self.model_info = None


def test_the_key_comes_from_the_environment_then_the_variable_and_is_masked(tmp_path, monkeypatch):
    store = _store(tmp_path)
    store.dataset("numbers").save([1])
    assert KEY in credentials.MASKED

    variable_key = "variable-deployment-key-0123456789"
    monkeypatch.delenv(KEY_ENV)
    monkeypatch.setattr(intermediate_key, "_variable_get", lambda: variable_key)
    from_variable = _store(tmp_path)
    from_variable.dataset("numbers").save([2])
    assert from_variable.dataset("numbers").load() == [2]
    assert variable_key in credentials.MASKED
    monkeypatch.setenv(KEY_ENV, KEY)  # the environment comes first
    _refused(_store(tmp_path), "numbers", "its signature does not match")

    assert (intermediate_key.run_key("relay", "manual__1")
            != intermediate_key.run_key("relay", "manual__2"))


def test_without_a_key_a_node_fails_naming_where_to_set_one_and_the_start_task_generates_it(
        tmp_path, monkeypatch):
    monkeypatch.delenv(KEY_ENV)
    path = _file(_store(tmp_path), "numbers")
    with pytest.raises(DatasetError) as raised:  # Kedro's load wrapper keeps our message
        _store(tmp_path).dataset("numbers").save([1])
    assert f"set {KEY_ENV} on every worker" in str(raised.value)
    assert f"the Airflow Variable {KEY_VARIABLE}" in str(raised.value)
    assert not path.exists()  # nothing written unsigned

    variables: dict[str, str] = {}
    monkeypatch.setattr(intermediate_key, "_variable_get", lambda: variables.get(KEY_VARIABLE))
    monkeypatch.setattr(intermediate_key, "_variable_set",
                        lambda value: variables.__setitem__(KEY_VARIABLE, value))
    monkeypatch.setattr(intermediate_key, "SETTLE_SECONDS", 0)
    _store(tmp_path).ensure_key()  # the start task
    generated = variables[KEY_VARIABLE]
    assert len(generated) >= 32 and generated in credentials.MASKED
    _store(tmp_path).ensure_key()  # a second run's start task keeps it
    assert variables[KEY_VARIABLE] == generated
    _store(tmp_path).dataset("numbers").save([1])  # node tasks: the Variable
    assert _store(tmp_path).dataset("numbers").load() == [1]


def test_a_key_too_short_is_refused_without_showing_it(monkeypatch):
    monkeypatch.setenv(KEY_ENV, "short-key")
    with pytest.raises(IntermediateKeyError) as raised:
        intermediate_key.run_key("relay", "manual__1")
    assert f"environment variable {KEY_ENV} is shorter than 16" in str(raised.value)
    assert "short-key" not in str(raised.value)
    with pytest.raises(IntermediateKeyError):  # the launching task fails, not later its node
        intermediate_key.runner_environment("relay", "manual__1")
    monkeypatch.delenv(KEY_ENV)
    assert intermediate_key.runner_environment("relay", "manual__1") == {}  # no key: the runner
    # fails only if its node reads or writes intermediate data


def test_the_node_runner_gets_the_runs_key_only_in_its_environment(tmp_path, monkeypatch):
    """The launching task hands the runner the DAG run's key (never the deployment key, never on
    the command line); the runner takes it out of its environment and reads what a worker's task
    signed."""
    from airflow_kedro_mlflow.runtime.invocation import NodeInvocation
    from airflow_kedro_mlflow.runtime.launch import PythonLauncher

    seen = tmp_path / "seen"
    python = tmp_path / "python"  # stands in for the other environment's interpreter
    python.write_text(f'#!/bin/sh\necho "$@" > {seen}.argv\nenv > {seen}.env\n')
    python.chmod(python.stat().st_mode | stat.S_IEXEC)
    invocation = NodeInvocation(project_path=str(tmp_path), pipeline="__default__", dag_id="relay",
                                run_id="manual__1", run_after=RUN_AFTER.isoformat(),
                                task_id="summarize", node_names=("summarize",))
    monkeypatch.setenv(f"AIRFLOW_VAR_{KEY_VARIABLE.upper()}", KEY)

    class Log:
        def info(self, *args: object) -> None:
            pass

    result = PythonLauncher(str(python), Log()).run(invocation, {})
    assert result["exit_code"] == 0
    env = dict(line.split("=", 1) for line in Path(f"{seen}.env").read_text().splitlines()
               if "=" in line)
    run_key = intermediate_key.run_key("relay", "manual__1").hex()
    assert env[RUN_KEY_ENV] == run_key and run_key in credentials.MASKED
    assert KEY_ENV not in env and f"AIRFLOW_VAR_{KEY_VARIABLE.upper()}" not in env
    assert KEY not in Path(f"{seen}.env").read_text()
    assert run_key not in Path(f"{seen}.argv").read_text()

    _store(tmp_path).dataset("evens").save([2, 4])  # written by tasks on a worker
    _store(tmp_path, run_id="manual__2").dataset("evens").save([6, 8])
    monkeypatch.delenv(KEY_ENV)  # the runner's environment: the run's key only
    monkeypatch.delenv(f"AIRFLOW_VAR_{KEY_VARIABLE.upper()}")
    monkeypatch.setenv(RUN_KEY_ENV, run_key)
    intermediate_key.take_handed_over("relay", "manual__1")
    assert RUN_KEY_ENV not in os.environ
    assert _store(tmp_path).dataset("evens").load() == [2, 4]
    with pytest.raises(DatasetError, match=f"set {KEY_ENV}"):  # good for its own run only
        _store(tmp_path, run_id="manual__2").dataset("evens").load()


def test_a_runner_given_a_bad_key_fails(monkeypatch):
    monkeypatch.setenv(RUN_KEY_ENV, "not hex")
    with pytest.raises(IntermediateKeyError, match=f"{RUN_KEY_ENV} is not a hex key"):
        intermediate_key.take_handed_over("relay", "manual__1")
