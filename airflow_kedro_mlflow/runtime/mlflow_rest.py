"""The MLflow run bookkeeping of a task, spoken to a tracking server over its REST API.

A node task's own MLflow work is small: create its child run, log the node's parameters and
duration, close it. Importing ``mlflow`` for that costs more than the rest of the task (about a
second on each task, several times what the requests take). With an ``http(s)://`` tracking URI,
tasks use this client instead, built on ``httpx`` (which the Airflow Task SDK has imported
already); MLflow itself is imported only if the node's own code or datasets use it. Other URIs
(``sqlite:///``, ``databricks``, plugins) go through MLflow's ``MlflowClient``.

The client follows MLflow's HTTP client where users configure it: the same environment variables
for authentication (``MLFLOW_TRACKING_TOKEN``, ``MLFLOW_TRACKING_USERNAME``/``PASSWORD``), TLS
(``MLFLOW_TRACKING_INSECURE_TLS``, ``MLFLOW_TRACKING_SERVER_CERT_PATH``,
``MLFLOW_TRACKING_CLIENT_CERT_PATH``), retries and timeout (``MLFLOW_HTTP_REQUEST_*``, with
MLflow's defaults: a tracking server that is down for up to about four minutes is waited for).
Runs come back with MLflow's attribute names (``run.info.run_id``, ``run.data.tags``).
"""

from __future__ import annotations

import getpass
import logging
import os
import random
import time
from dataclasses import dataclass, field
from typing import Any

from airflow_kedro_mlflow.core.urls import redact_url, split_userinfo

log = logging.getLogger(__name__)

TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
MAX_BACKOFF_S = 120.0


class TrackingError(Exception):
    """An MLflow tracking server refused a request (``error_code`` as MLflow names it)."""

    def __init__(self, message: str, error_code: str | None = None):
        super().__init__(message)
        self.error_code = error_code


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    experiment_id: str
    status: str
    run_name: str = ""
    user_id: str = ""
    start_time: int | None = None
    end_time: int | None = None
    lifecycle_stage: str = "active"
    artifact_uri: str = ""


@dataclass(frozen=True)
class RunData:
    tags: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Run:
    """A run as the server returned it, with the attribute names of ``mlflow.entities.Run``."""

    info: RunInfo
    data: RunData

    @classmethod
    def from_json(cls, payload: dict[str, Any]) -> Run:
        info, data = payload.get("info", {}), payload.get("data", {})
        return cls(
            RunInfo(
                run_id=info["run_id"],
                experiment_id=str(info["experiment_id"]),
                status=info.get("status", "RUNNING"),
                run_name=info.get("run_name", ""),
                user_id=info.get("user_id", ""),
                start_time=_int(info.get("start_time")),
                end_time=_int(info.get("end_time")),
                lifecycle_stage=info.get("lifecycle_stage", "active"),
                artifact_uri=info.get("artifact_uri", ""),
            ),
            RunData(
                tags={t["key"]: t.get("value", "") for t in data.get("tags", [])},
                params={p["key"]: p.get("value", "") for p in data.get("params", [])},
                metrics={m["key"]: float(m["value"]) for m in data.get("metrics", [])},
            ),
        )


@dataclass(frozen=True)
class Experiment:
    experiment_id: str
    lifecycle_stage: str


class RestTrackingClient:
    """The subset of ``MlflowClient`` the start, node and end tasks use, over HTTP.

    Authenticates as MLflow's client does, from ``MLFLOW_TRACKING_USERNAME``/``PASSWORD`` (or
    ``MLFLOW_TRACKING_TOKEN``); a URI's user-info is used only when they are not set, and never
    kept in the URL that requests and error messages name."""

    def __init__(self, tracking_uri: str):
        uri, self._uri_user, self._uri_password = split_userinfo(tracking_uri)
        self._base = uri.rstrip("/") + "/api/2.0/mlflow/"
        self._http: Any = None

    # --- experiments
    def get_experiment_by_name(self, name: str) -> Experiment | None:
        try:
            body = self._call("GET", "experiments/get-by-name", params={"experiment_name": name})
        except TrackingError as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                return None
            raise
        experiment = body["experiment"]
        return Experiment(str(experiment["experiment_id"]), experiment.get("lifecycle_stage", "active"))

    def create_experiment(
        self, name: str, artifact_location: str | None = None, tags: dict[str, str] | None = None
    ) -> str:
        payload: dict[str, Any] = {"name": name, "tags": _pairs(tags or {})}
        if artifact_location:
            payload["artifact_location"] = artifact_location
        return str(self._call("POST", "experiments/create", json=payload)["experiment_id"])

    def restore_experiment(self, experiment_id: str) -> None:
        self._call("POST", "experiments/restore", json={"experiment_id": experiment_id})

    # --- runs
    def get_run(self, run_id: str) -> Run:
        return Run.from_json(self._call("GET", "runs/get", params={"run_id": run_id})["run"])

    def create_run(
        self, experiment_id: str, run_name: str | None = None, tags: dict[str, str] | None = None
    ) -> Run:
        tags = dict(tags or {})
        user = tags.setdefault("mlflow.user", _user())
        payload = {
            "experiment_id": experiment_id,
            "start_time": _now_ms(),
            "user_id": user,
            "tags": _pairs(tags),
            **({"run_name": run_name} if run_name else {}),
        }
        return Run.from_json(self._call("POST", "runs/create", json=payload)["run"])

    def search_runs(
        self,
        experiment_ids: list[str],
        filter_string: str = "",
        max_results: int = 1000,
        order_by: list[str] | None = None,
    ) -> list[Run]:
        payload = {
            "experiment_ids": experiment_ids,
            "filter": filter_string,
            "max_results": max_results,
            "order_by": order_by or [],
        }
        return [Run.from_json(r) for r in self._call("POST", "runs/search", json=payload).get("runs", [])]

    def update_run(self, run_id: str, status: str | None = None) -> None:
        payload: dict[str, Any] = {"run_id": run_id}
        if status:
            payload["status"] = status
        self._call("POST", "runs/update", json=payload)

    def set_terminated(self, run_id: str, status: str = "FINISHED") -> None:
        self._call("POST", "runs/update", json={"run_id": run_id, "status": status, "end_time": _now_ms()})

    def set_tag(self, run_id: str, key: str, value: str) -> None:
        self._call("POST", "runs/set-tag", json={"run_id": run_id, "key": key, "value": str(value)})

    def delete_tag(self, run_id: str, key: str) -> None:
        self._call("POST", "runs/delete-tag", json={"run_id": run_id, "key": key})

    def log_batch(
        self,
        run_id: str,
        params: dict[str, str] | None = None,
        tags: dict[str, str] | None = None,
        metrics: dict[str, float] | None = None,
    ) -> None:
        now = _now_ms()
        payload = {
            "run_id": run_id,
            "params": _pairs(params or {}),
            "tags": _pairs(tags or {}),
            "metrics": [
                {"key": k, "value": float(v), "timestamp": now, "step": 0}
                for k, v in (metrics or {}).items()
            ],
        }
        self._call("POST", "runs/log-batch", json=payload)

    # --- transport
    def _client(self) -> Any:
        if self._http is None:
            import httpx

            verify: Any = True
            if self._base.startswith("http://"):
                verify = False  # no TLS to verify (redirects are not followed): skip loading CAs
            elif os.environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() in ("true", "1"):
                verify = False
            elif os.environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH"):
                verify = os.environ["MLFLOW_TRACKING_SERVER_CERT_PATH"]
            auth = None
            user = os.environ.get("MLFLOW_TRACKING_USERNAME")
            password = os.environ.get("MLFLOW_TRACKING_PASSWORD")
            if not (user and password):
                user, password = self._uri_user, self._uri_password
            if user and password:
                auth = httpx.BasicAuth(user, password)
            headers = {}
            if os.environ.get("MLFLOW_TRACKING_TOKEN"):
                headers["Authorization"] = f"Bearer {os.environ['MLFLOW_TRACKING_TOKEN']}"
            self._http = httpx.Client(
                verify=verify,
                cert=os.environ.get("MLFLOW_TRACKING_CLIENT_CERT_PATH") or None,
                auth=auth,
                headers=headers,
                timeout=float(os.environ.get("MLFLOW_HTTP_REQUEST_TIMEOUT", "120")),
            )
        return self._http

    def _call(self, method: str, endpoint: str, **kwargs: Any) -> dict[str, Any]:
        """One request, retried like MLflow's client: on connection errors and transient
        statuses, with exponential backoff (``MLFLOW_HTTP_REQUEST_MAX_RETRIES`` times)."""
        import httpx

        retries = int(os.environ.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "7"))
        factor = float(os.environ.get("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "2"))
        jitter = float(os.environ.get("MLFLOW_HTTP_REQUEST_BACKOFF_JITTER", "1.0"))
        url = self._base + endpoint
        for attempt in range(retries + 1):
            try:
                response = self._client().request(method, url, **kwargs)
            except httpx.TransportError as exc:
                if attempt == retries:
                    raise TrackingError(
                        f"MLflow tracking server unreachable at {redact_url(url)}: {exc}"
                    ) from exc
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code < 400:
                    return response.json() if response.content else {}
                if response.status_code not in TRANSIENT_STATUS or attempt == retries:
                    raise _error(url, response)
                problem = f"HTTP {response.status_code}"
            delay = 0.0 if attempt == 0 else min(MAX_BACKOFF_S, factor * 2**attempt)
            delay += random.random() * jitter
            log.warning("MLflow request %s failed (%s); retrying in %.1f s", endpoint, problem, delay)
            time.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover


def _error(url: str, response: Any) -> TrackingError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    message = body.get("message") or response.text[:500]
    return TrackingError(
        f"MLflow tracking server answered {response.status_code} to {redact_url(url)}: {message}",
        body.get("error_code"),
    )


def _pairs(values: dict[str, Any]) -> list[dict[str, str]]:
    return [{"key": str(k), "value": str(v)} for k, v in values.items()]


def _now_ms() -> int:
    return int(time.time() * 1000)


def _int(value: Any) -> int | None:
    return int(value) if value not in (None, "") else None


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"


class MlflowTrackingClient:
    """The same interface on MLflow's own client, for tracking URIs that are not HTTP."""

    def __init__(self, tracking_uri: str, registry_uri: str | None = None):
        from mlflow.tracking import MlflowClient

        self._client = MlflowClient(tracking_uri, registry_uri)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def log_batch(
        self,
        run_id: str,
        params: dict[str, str] | None = None,
        tags: dict[str, str] | None = None,
        metrics: dict[str, float] | None = None,
    ) -> None:
        from mlflow.entities import Metric, Param, RunTag

        now = _now_ms()
        self._client.log_batch(
            run_id,
            metrics=[Metric(k, float(v), now, 0) for k, v in (metrics or {}).items()],
            params=[Param(k, str(v)) for k, v in (params or {}).items()],
            tags=[RunTag(k, str(v)) for k, v in (tags or {}).items()],
        )


def tracking_client(tracking_uri: str, registry_uri: str | None = None) -> Any:
    """The light REST client for ``http(s)://`` tracking URIs, MLflow's client otherwise."""
    if tracking_uri.startswith(("http://", "https://")):
        return RestTrackingClient(tracking_uri)
    return MlflowTrackingClient(tracking_uri, registry_uri)
