"""Typed settings from ``conf/<env>/mlflow.yml``, in kedro-mlflow 2's schema.

Projects that already use kedro-mlflow keep their file; projects that do not can write the same
keys without installing it. The file is checked by typed models (``mlflow_yml``): unknown keys are
errors (as in kedro-mlflow), and every error names the file and the dotted key. Reading the file
goes through the project's config loader, so ``${oc.env:...}`` and env overrides resolve as
elsewhere in Kedro.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from airflow_kedro_mlflow.core.errors import ConfigError
from airflow_kedro_mlflow.core.urls import redact_url, split_userinfo

CONFIG_KEY = "mlflow"
CONFIG_PATTERNS = ["mlflow*", "mlflow*/**", "**/mlflow*"]
LONG_PARAMS_STRATEGIES = ("fail", "truncate", "tag")
DEFAULT_LOCAL_ARTIFACTS = "mlruns"
"""Where a SQLite store's experiments keep artifacts when mlflow.yml names no location: the
project's ``mlruns/`` (MLflow's own default name, relative to the project, not the worker)."""

@dataclass(frozen=True)
class MlflowSettings:
    """What the tasks of a DAG need to know to track into MLflow."""

    enabled: bool
    tracking_uri: str | None = None
    registry_uri: str | None = None
    credentials: str | None = None
    experiment_name: str = "Default"
    artifact_location: str | None = None
    experiment_tags: dict[str, str] = field(default_factory=dict)
    run_name: str | None = None
    flatten_dict_params: bool = True
    recursive_dict_params: bool = True
    dict_params_sep: str = "."
    long_params_strategy: str = "fail"
    restore_if_deleted: bool = True
    ui_url: str | None = None
    source: str = ""
    tracking_username: str | None = field(default=None, repr=False)
    tracking_password: str | None = field(default=None, repr=False)
    """The user-info of an ``http(s)://`` tracking (or registry) URI, taken out of it: MLflow gets
    them as ``MLFLOW_TRACKING_USERNAME``/``PASSWORD``, so the URI itself can be shown anywhere."""

    def run_url(self, experiment_id: str, run_id: str) -> str | None:
        """The run's page in the MLflow UI, when there is a UI to point at: a link that Airflow
        stores in XCom and serves to anyone who sees the task, so never with credentials."""
        base = self.ui_url
        if base is None:
            return None
        return f"{redact_url(base).rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"


def settings_from_dict(
    config: Mapping[str, Any] | None,
    *,
    project_path: Path,
    pipeline_name: str,
    package_name: str,
    source: str,
    environ: Mapping[str, str] = os.environ,
) -> MlflowSettings:
    """Validate ``mlflow.yml``'s content (``None``: no file) and resolve it for this project."""
    if config is None:
        uri = environ.get("MLFLOW_TRACKING_URI")
        if not uri:
            return MlflowSettings(enabled=False, source=source)
        config = {}
    from airflow_kedro_mlflow.config.mlflow_yml import validate

    values = validate(config, source)
    server, tracking, ui = values["server"], values["tracking"], values["ui"]
    if pipeline_name in tracking["disable_tracking"]["pipelines"]:
        return MlflowSettings(enabled=False, source=source)
    _refuse_unsupported(server, tracking, source)
    if tracking["params"]["long_params_strategy"] not in LONG_PARAMS_STRATEGIES:
        raise ConfigError(
            f"{source}: key 'tracking.params.long_params_strategy' must be one of "
            f"{', '.join(LONG_PARAMS_STRATEGIES)}"
        )
    tracking_uri = server["mlflow_tracking_uri"] or environ.get("MLFLOW_TRACKING_URI")
    if not tracking_uri:
        raise ConfigError(
            f"{source}: key 'server.mlflow_tracking_uri' is not set (nor MLFLOW_TRACKING_URI): "
            f"use e.g. 'sqlite:///mlflow.db' or 'http://host:5000'"
        )
    tracking_uri = resolve_uri(tracking_uri, project_path, source, "server.mlflow_tracking_uri")
    registry_uri = server["mlflow_registry_uri"]
    if registry_uri:
        registry_uri = resolve_uri(registry_uri, project_path, source, "server.mlflow_registry_uri")
    tracking_uri, registry_uri, user, password = _without_userinfo(tracking_uri, registry_uri, source)
    experiment = tracking["experiment"]
    artifact_location = experiment["create_experiment_kwargs"]["artifact_location"]
    if not artifact_location and tracking_uri.startswith("sqlite:"):
        # MLflow would put a local store's artifacts under the *worker's* working directory
        # (./mlruns); like the store itself, they belong to the project
        artifact_location = DEFAULT_LOCAL_ARTIFACTS
    if artifact_location and "://" not in artifact_location:
        path = Path(artifact_location)
        artifact_location = (path if path.is_absolute() else project_path / path).as_uri()
    return MlflowSettings(
        enabled=True,
        tracking_uri=tracking_uri,
        registry_uri=registry_uri,
        credentials=server["credentials"],
        experiment_name=experiment["name"] or package_name,
        artifact_location=artifact_location,
        experiment_tags={str(k): str(v) for k, v in experiment["create_experiment_kwargs"]["tags"].items()},
        run_name=tracking["run"]["name"],
        flatten_dict_params=tracking["params"]["dict_params"]["flatten"] is not False,
        recursive_dict_params=tracking["params"]["dict_params"]["recursive"],
        dict_params_sep=tracking["params"]["dict_params"]["sep"],
        long_params_strategy=tracking["params"]["long_params_strategy"],
        restore_if_deleted=experiment["restore_if_deleted"],
        ui_url=_ui_url(tracking_uri, ui),
        source=source,
        tracking_username=user,
        tracking_password=password,
    )


def _without_userinfo(
    tracking_uri: str, registry_uri: str | None, source: str
) -> tuple[str, str | None, str | None, str | None]:
    """The tracking and registry URIs without the user-info of ``http(s)://`` ones, and the user
    and password it held (MLflow's HTTP client takes one pair for both servers).

    Other URIs (a database's ``postgresql://user:password@host/db``) keep theirs: it is the only
    way their client takes it, and the task masks its password instead."""
    tracking_uri, user, password = _split_http(tracking_uri)
    if registry_uri:
        registry_uri, registry_user, registry_password = _split_http(registry_uri)
        if registry_password is not None:
            if password is not None and (registry_user, registry_password) != (user, password):
                raise ConfigError(
                    f"{source}: keys 'server.mlflow_tracking_uri' and 'server.mlflow_registry_uri' "
                    "carry different user-info, but MLflow's client takes one user and password "
                    "for both (MLFLOW_TRACKING_USERNAME/PASSWORD)"
                )
            user, password = registry_user, registry_password
    return tracking_uri, registry_uri, user, password


def _split_http(uri: str) -> tuple[str, str | None, str | None]:
    """An ``http(s)://`` URI without user-info, and its user and password; a user without a
    password is dropped (MLflow's variables need both). Other URIs unchanged."""
    if not uri.startswith(("http://", "https://")):
        return uri, None, None
    shown, user, password = split_userinfo(uri)
    return (shown, user, password) if password is not None else (shown, None, None)


def _refuse_unsupported(server: Mapping[str, Any], tracking: Mapping[str, Any], source: str) -> None:
    """kedro-mlflow keys that cannot mean in a DAG run what they mean in ``kedro run``: one
    line each, naming the key, rather than silently doing something else."""
    refusals = []
    if server["request_header_provider"]["type"]:
        refusals.append((
            "server.request_header_provider",
            "is not supported: tasks authenticate MLflow requests with MLFLOW_TRACKING_TOKEN or "
            "MLFLOW_TRACKING_USERNAME/PASSWORD (credentials.yml's entry named by "
            "'server.credentials')"))
    if tracking["run"]["id"]:
        refusals.append((
            "tracking.run.id",
            "cannot pin a run: each DAG run gets its own parent run (found again on retries "
            "and clears); remove the key"))
    if tracking["run"]["nested"] is False:
        refusals.append((
            "tracking.run.nested",
            "is false, but node runs are always nested children of the DAG run's parent run; "
            "remove the key"))
    if tracking["disable_tracking"]["disable_autologging"] is False:
        refusals.append((
            "tracking.disable_tracking.disable_autologging",
            "is false, but tasks never turn MLflow autologging on; call mlflow.autolog() in a "
            "node to use it, and remove the key"))
    if refusals:
        key, reason = refusals[0]
        raise ConfigError(f"{source}: key '{key}' {reason}")


def resolve_uri(uri: str, project_path: Path, source: str, key: str) -> str:
    """Make a tracking/registry URI absolute: relative paths are relative to the project root.

    A plain folder (MLflow's file store) is refused with the fix, since MLflow 3 refuses it too.
    """
    parsed = urlparse(uri)
    if parsed.scheme == "sqlite":
        raw = uri[len("sqlite:///") :] if uri.startswith("sqlite:///") else ""
        if raw and not raw.startswith("/") and raw != ":memory:":
            return f"sqlite:///{(project_path / raw).resolve()}"
        return uri
    if parsed.scheme in ("", "file"):
        raise ConfigError(
            f"{source}: key '{key}' is a folder ({redact_url(uri)!r}); MLflow 3 no longer supports its file "
            f"store: use 'sqlite:///mlflow.db' (relative to the project) or a tracking server URL"
        )
    return uri


def _ui_url(tracking_uri: str, ui: Mapping[str, Any]) -> str | None:
    if tracking_uri.startswith(("http://", "https://")):
        return redact_url(tracking_uri)
    if tracking_uri.startswith("databricks"):
        return None
    return f"http://{ui['host']}:{ui['port']}"
