"""Whether another run of the DAG still exists, as the Airflow Task SDK tells a running task.

The start task closes the MLflow parents of the DAG's other runs that Airflow no longer has; a
wrong "no such run" closes the parent of a run still in progress as KILLED. So "no such run" is
decided on what the Task SDK raises, never on message text (the text of an unrelated error, such
as a DNS failure, may well say "not found"). What the SDK (task-sdk 1.3, Airflow 3.3) raises when
the execution API's ``GET dag-runs/{dag_id}/{run_id}/state`` answers 404 for a missing run:

- in a deployment, the supervisor turns the client's ``ServerResponseError`` into an
  ``ErrorResponse(error=ErrorType.API_SERVER_ERROR, detail={"status_code": 404, "message": ...,
  "detail": <response body>})``, which ``RuntimeTaskInstance.get_dagrun_state`` raises as
  ``AirflowRuntimeError``. There is no ``DAGRUN_NOT_FOUND`` error type.
- under ``dag.test()`` the in-process supervisor lets the ``ServerResponseError`` itself through:
  ``response.status_code == 404``, ``detail`` the body's ``detail``.

The route's body is ``{"detail": {"reason": "not_found", "message": ...}}``; that ``reason`` is
required besides the 404, which also answers a URL no route matches (``{"detail": "Not Found"}``).

The SDK's client puts the ids into the URL unquoted: a run id of ``.`` asks about
``dag-runs/<dag_id>/state`` (the run named ``state``), ``..`` about ``dag-runs/state``, and ``/``,
``?``, ``#`` or ``%`` make yet another URL. No answer to such a question is about the run, so it
is not asked, and the run's state is unknown.
"""

from __future__ import annotations

from typing import Any

UNKNOWN = "unknown"
"""The state of a run Airflow could not be asked about, or did not answer about."""

_URL_SPECIAL = ("/", "?", "#", "%")


def can_ask_about(*ids: str) -> bool:
    """Whether these ids reach the execution API as the same ids (one URL path segment each)."""
    return all(
        value not in ("", ".", "..") and not any(char in value for char in _URL_SPECIAL)
        for value in ids
    )


def is_dag_run_not_found(exc: BaseException) -> bool:
    """Whether ``exc``, raised by ``RuntimeTaskInstance.get_dagrun_state``, says that the DAG run
    does not exist: the execution API's typed 404, by either way the SDK raises it."""
    from airflow.sdk.api.client import ServerResponseError
    from airflow.sdk.exceptions import AirflowRuntimeError, ErrorType

    if isinstance(exc, AirflowRuntimeError):  # through the supervisor: a deployment
        error = exc.error
        detail = error.detail or {}
        if error.error != ErrorType.API_SERVER_ERROR or detail.get("status_code") != 404:
            return False
        body = detail.get("detail")
        return _says_not_found(body.get("detail") if isinstance(body, dict) else None)
    if isinstance(exc, ServerResponseError):  # straight from the client: dag.test()
        return exc.response.status_code == 404 and _says_not_found(getattr(exc, "detail", None))
    return False


def _says_not_found(detail: Any) -> bool:
    return isinstance(detail, dict) and detail.get("reason") == "not_found"
