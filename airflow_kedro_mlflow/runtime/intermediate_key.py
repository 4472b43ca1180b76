"""The key that authenticates a DAG run's intermediate data, and where each task gets it.

The trust boundary. The intermediate store is a folder or a bucket prefix at a predictable path,
and what it holds is unpickled (code runs) by the next task; in a shared bucket, anyone who can
write there (every worker's S3 key, at least) could otherwise run code on every worker that reads
it. So every payload, and every ``.model_uri`` hand-off file, carries an HMAC-SHA256 that only a
holder of the key can compute (``IntermediateStore.write_signed``), checked before a byte is
unpickled. The key therefore never lives in the store.

Keys. One deployment key (any string of at least ``MIN_KEY_LENGTH`` characters) is looked up, in
this order:

1. ``AIRFLOW_KEDRO_MLFLOW_INTERMEDIATE_KEY`` (``KEY_ENV``) in the task's environment. For
   deployments that manage secrets in their orchestrator (a Kubernetes Secret, compose's ``.env``);
   it is also what ``python -m airflow_kedro_mlflow.node_runner`` run by hand, without Airflow,
   reads. It must be the same on every worker.
2. The Airflow Variable ``airflow_kedro_mlflow_intermediate_secret`` (``KEY_VARIABLE``), read
   through the Task SDK (``airflow.sdk.Variable``), so a secrets backend (Vault, AWS Secrets
   Manager...) or ``AIRFLOW_VAR_AIRFLOW_KEDRO_MLFLOW_INTERMEDIATE_SECRET`` can hold it. The word
   "secret" in its name makes Airflow hide its value in the UI and mask it in logs.
3. Neither set: the start task of a DAG run (``kedro_run_start``) generates a random key and
   stores it as that Variable (in Airflow's metadata DB, through the execution API), so a
   newcomer needs no setup. Only the start task generates one: a node task that finds no key
   fails, naming both places, rather than signing with a key nobody else has. Two first-ever start
   tasks may race to create it; each re-reads the Variable after a pause, so both settle on the
   last one written (a run that still lost fails closed, with the not-trusted error, and is
   cleared from its start).

Each DAG run signs with its own key, derived from the deployment key and the DAG and run ids
(``run_key``), and each payload's MAC covers DAG id, run id, dataset name and kind as well as the
bytes: a payload copied under another dataset's name or into another run's folder does not
verify. A node run elsewhere (a virtualenv, a pod: the node runner) gets only that run key, from
its launching task, in ``RUN_KEY_ENV``: never on a command line, masked in the task log, removed
from the runner's environment as it starts (the node's code and its subprocesses do not inherit
it), and good for that one DAG run only. A pod's spec does carry it in its env, so who can read
pod specs in that namespace (and write the store) could forge data of that run while it lives.

Rotation: change the environment variable or the Variable (delete the Variable to have the next
start task generate a new one). Data written under the old key is refused afterwards, so rotate
between DAG runs; a run caught in between (or a failed run kept for a rerun) fails with the
not-trusted error and is cleared from its start task.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import time
from typing import Any

from airflow_kedro_mlflow.config.credentials import mask
from airflow_kedro_mlflow.core.errors import AirflowKedroError
from airflow_kedro_mlflow.core.ids import START_TASK_ID

log = logging.getLogger(__name__)

KEY_ENV = "AIRFLOW_KEDRO_MLFLOW_INTERMEDIATE_KEY"
"""The deployment key, set on the workers (first choice)."""
KEY_VARIABLE = "airflow_kedro_mlflow_intermediate_secret"
"""The Airflow Variable that holds the deployment key (second choice; generated if neither)."""
KEY_DESCRIPTION = ("Authenticates the intermediate data of airflow-kedro-mlflow's DAG runs (HMAC "
                   "key), generated when none was configured. Delete it to rotate; see the README.")
"""The generated Variable's description, wherever it is generated (a start task, or Airflow's
jobs as they start: ``listener.ensure_intermediate_key``)."""
RUN_KEY_ENV = "AIRFLOW_KEDRO_MLFLOW_RUN_KEY"
"""One DAG run's key (hex), handed by a launching task to the node runner it starts."""
DEPLOYMENT_KEY_ENVS = (KEY_ENV, f"AIRFLOW_VAR_{KEY_VARIABLE.upper()}")
"""Where a worker's environment may hold the deployment key: not passed on to a node runner."""
MIN_KEY_LENGTH = 16
SETTLE_SECONDS = 1.0
"""Pause between storing a generated key and reading it back (see the race above)."""

_RUN_KEY_CONTEXT = b"airflow-kedro-mlflow intermediate run key v1"
_handed_over: dict[tuple[str, str], bytes] = {}


class IntermediateKeyError(AirflowKedroError):
    """No usable key authenticates the intermediate data here."""


class MissingKeyError(IntermediateKeyError):
    """No key is configured at all (as opposed to one that is unusable)."""


def encode_parts(*parts: str | bytes) -> bytes:
    """``parts`` as one unambiguous byte string (each length-prefixed): no two lists of parts
    give the same bytes, whatever characters ids and names hold."""
    out = bytearray()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        out += len(data).to_bytes(8, "big") + data
    return bytes(out)


def derive_run_key(deployment_key: str | bytes, dag_id: str, run_id: str) -> bytes:
    """The key one DAG run signs with: HMAC-SHA256 of its DAG and run ids under the deployment key."""
    secret = deployment_key.encode() if isinstance(deployment_key, str) else deployment_key
    return hmac.new(secret, encode_parts(_RUN_KEY_CONTEXT, dag_id, run_id), hashlib.sha256).digest()


def run_key(dag_id: str, run_id: str, *, generate: bool = False) -> bytes:
    """The key of DAG run ``dag_id``/``run_id`` in this process (see the module's docstring for
    the order); ``generate``: the start task's right to create the Variable when there is none."""
    handed = _handed_over.get((dag_id, run_id))
    if handed is not None:
        return handed
    return derive_run_key(deployment_key(generate=generate), dag_id, run_id)


def deployment_key(*, generate: bool = False) -> str:
    """The deployment key, masked; raise ``IntermediateKeyError`` when there is none."""
    value, source = _configured_key()
    if value is None and generate:
        value, source = _generate(), f"the Airflow Variable {KEY_VARIABLE} (generated)"
    if value is None:
        raise MissingKeyError(
            f"no key to authenticate intermediate data: set {KEY_ENV} on every worker (and for "
            f"the node runner run by hand) or the "
            f"Airflow Variable {KEY_VARIABLE} (a secrets backend works), or let the DAG run's start "
            f"task ({START_TASK_ID}) generate that Variable: clear the DAG run from its start task"
        )
    mask(value)
    if len(value) < MIN_KEY_LENGTH:
        raise IntermediateKeyError(
            f"the intermediate data key in {source} is shorter than {MIN_KEY_LENGTH} characters: "
            f"use a long random value (e.g. `python -c 'import secrets; "
            f"print(secrets.token_urlsafe(32))'`)"
        )
    return value


def _configured_key() -> tuple[str | None, str]:
    value = os.environ.get(KEY_ENV)
    if value:
        return value, f"the environment variable {KEY_ENV}"
    value = _variable_get()
    return (value or None), f"the Airflow Variable {KEY_VARIABLE}"


def _variable_get() -> str | None:
    """The Variable through the Task SDK; ``None`` where Airflow is not installed (the node
    runner's environment) or does not know it."""
    try:
        from airflow.sdk import Variable
    except ImportError:
        return None
    value: Any = Variable.get(KEY_VARIABLE, default=None)
    return None if value is None else str(value)


def _variable_set(value: str) -> None:
    from airflow.sdk import Variable

    Variable.set(KEY_VARIABLE, value, description=KEY_DESCRIPTION)


def _generate() -> str:
    candidate = secrets.token_urlsafe(32)
    mask(candidate)
    try:
        _variable_set(candidate)
    except Exception as exc:
        raise IntermediateKeyError(
            f"no key authenticates intermediate data and the start task could not store a generated "
            f"one as the Airflow Variable {KEY_VARIABLE} ({type(exc).__name__}: {exc}): set "
            f"{KEY_ENV} on every worker or that Variable"
        ) from exc
    log.warning("Generated the key that authenticates intermediate data and stored it as the "
                "Airflow Variable %s (set it, or %s, yourself to manage it)", KEY_VARIABLE, KEY_ENV)
    time.sleep(SETTLE_SECONDS)
    return _variable_get() or candidate  # a concurrent start task's key, if it was written last


def runner_environment(dag_id: str, run_id: str) -> dict[str, str]:
    """What a launching task gives the node runner it starts: the run's key, masked; nothing if
    no key is configured (a node that then reads or writes intermediate data fails naming
    where to set one)."""
    try:
        key = run_key(dag_id, run_id).hex()
    except MissingKeyError:  # an unusable key (too short) fails the launching task instead
        return {}
    mask(key)
    return {RUN_KEY_ENV: key}


def take_handed_over(dag_id: str, run_id: str) -> None:
    """In the node runner: adopt the run key its launching task handed over (``RUN_KEY_ENV``) and
    remove it from the environment, so the node's code and its subprocesses do not inherit it."""
    for name in (RUN_KEY_ENV, *DEPLOYMENT_KEY_ENVS):
        value = os.environ.get(name)
        if value:
            mask(value)
    text = os.environ.pop(RUN_KEY_ENV, None)
    if not text:
        return
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise IntermediateKeyError(f"{RUN_KEY_ENV} is not a hex key") from None
    _handed_over[(dag_id, run_id)] = key
