"""``conf/<env>/mlflow.yml`` (kedro-mlflow 2's schema) as one typed model, and what a DAG run
resolves from it for this project.

Projects that already use kedro-mlflow keep their file; projects that do not can write the same
keys without installing it. ``MlflowYml`` defines every key once: unknown keys are errors (as in
kedro-mlflow), values are checked strictly (``flatten: "yes"`` is not ``true``), a key set to null
takes its default, and every error is one line naming the file and the dotted key:
``conf/base/mlflow.yml: key 'tracking.run.nested' must be bool, got str``. ``MlflowSettings`` is
the model plus only what is resolved from it (URIs made absolute, user-info taken out, the UI's
address). Reading the file goes through the project's config loader, so ``${oc.env:...}`` and env
overrides resolve as elsewhere in Kedro.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from airflow_kedro_mlflow.core.errors import ConfigError
from airflow_kedro_mlflow.core.urls import redact_url, split_userinfo

CONFIG_KEY = "mlflow"
CONFIG_PATTERNS = ["mlflow*", "mlflow*/**", "**/mlflow*"]
DEFAULT_LOCAL_ARTIFACTS = "mlruns"
"""Where a SQLite store's experiments keep artifacts when mlflow.yml names no location: the
project's ``mlruns/`` (MLflow's own default name, relative to the project, not the worker)."""


class _Block(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    @model_validator(mode="before")
    @classmethod
    def _nulls_take_defaults(cls, value: Any) -> Any:
        if value is None:
            return {}
        if isinstance(value, Mapping):
            return {k: v for k, v in value.items() if v is not None}
        return value


class RequestHeaderProvider(_Block):
    type: str | None = None
    pass_context: bool = False
    init_kwargs: dict[str, Any] = Field(default_factory=dict)


class Server(_Block):
    mlflow_tracking_uri: str | None = None
    mlflow_registry_uri: str | None = None
    credentials: str | None = None
    request_header_provider: RequestHeaderProvider = Field(default_factory=RequestHeaderProvider)


class DisableTracking(_Block):
    pipelines: list[str] = Field(default_factory=list)
    disable_autologging: bool = True


class CreateExperimentKwargs(_Block):
    artifact_location: str | None = None
    tags: dict[str, Any] = Field(default_factory=dict)


class Experiment(_Block):
    name: str | None = None
    create_experiment_kwargs: CreateExperimentKwargs = Field(default_factory=CreateExperimentKwargs)
    restore_if_deleted: bool = True


class Run(_Block):
    id: str | None = None
    name: str | None = None
    nested: bool = True


class DictParams(_Block):
    flatten: bool = True
    """kedro-mlflow's own default is false; a DAG run's parameters are flattened unless told not to."""
    recursive: bool = True
    sep: str = "."


class Params(_Block):
    dict_params: DictParams = Field(default_factory=DictParams)
    long_params_strategy: Literal["fail", "truncate", "tag"] = "fail"


class Tracking(_Block):
    disable_tracking: DisableTracking = Field(default_factory=DisableTracking)
    experiment: Experiment = Field(default_factory=Experiment)
    run: Run = Field(default_factory=Run)
    params: Params = Field(default_factory=Params)


class Ui(_Block):
    port: str = "5000"
    host: str = "127.0.0.1"

    @field_validator("port", mode="before")
    @classmethod
    def _port_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class MlflowYml(_Block):
    """The whole file: every key of kedro-mlflow 2's schema, with its default."""

    server: Server = Field(default_factory=Server)
    tracking: Tracking = Field(default_factory=Tracking)
    ui: Ui = Field(default_factory=Ui)



_TYPE_NAMES = {"string_type": "str", "bool_type": "bool", "list_type": "list", "dict_type": "dict",
               "model_type": "a mapping", "int_type": "int"}


def validate(config: Any, source: str) -> MlflowYml:
    """``mlflow.yml``'s content, checked, with every default filled in."""
    try:
        return MlflowYml.model_validate(config if config is not None else {})
    except ValidationError as exc:
        raise ConfigError(_message(exc, config, source)) from None


def _message(exc: ValidationError, config: Any, source: str) -> str:
    error = exc.errors()[0]
    loc = [str(part) for part in error["loc"]]
    key = ".".join(loc)
    if error["type"] == "extra_forbidden":
        known = ", ".join(sorted(_model_at(loc[:-1]).model_fields))
        return f"{source}: unknown key '{key}' (known: {known})"
    if error["type"] == "literal_error":
        expected = str(error.get("ctx", {}).get("expected", "")).replace("'", "")
        return f"{source}: key '{key}' must be one of {expected.replace(' or ', ', ')}"
    if error["type"] in _TYPE_NAMES:
        got = type(error["input"]).__name__
        if error["type"] == "model_type":
            return f"{source}: key '{key}' must be a mapping, got {got}"
        return f"{source}: key '{key}' must be {_TYPE_NAMES[error['type']]}, got {got}"
    return f"{source}: key '{key}' {error['msg']}"


def _model_at(path: list[str]) -> type[BaseModel]:
    model: type[BaseModel] = MlflowYml
    for part in path:
        annotation = model.model_fields[part].annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
    return model


@dataclass(frozen=True)
class MlflowSettings:
    """What the tasks of a DAG need to know to track into MLflow: the file's keys (``file``)
    and what is resolved from them for this project."""

    enabled: bool
    file: MlflowYml = field(default_factory=MlflowYml, repr=False)
    """The file's keys as written (its URIs may hold user-info: use the resolved ones below)."""
    tracking_uri: str | None = None
    """``server.mlflow_tracking_uri`` (or ``MLFLOW_TRACKING_URI``), absolute, without user-info."""
    registry_uri: str | None = None
    experiment_name: str = "Default"
    """``tracking.experiment.name``, else the package's name."""
    artifact_location: str | None = None
    """``create_experiment_kwargs.artifact_location`` as a URI; a SQLite store's default."""
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
    file = validate(config, source)
    server, tracking = file.server, file.tracking
    if pipeline_name in tracking.disable_tracking.pipelines:
        return MlflowSettings(enabled=False, file=file, source=source)
    _refuse_unsupported(file, source)
    tracking_uri = server.mlflow_tracking_uri or environ.get("MLFLOW_TRACKING_URI")
    if not tracking_uri:
        raise ConfigError(
            f"{source}: key 'server.mlflow_tracking_uri' is not set (nor MLFLOW_TRACKING_URI): "
            f"use e.g. 'sqlite:///mlflow.db' or 'http://host:5000'"
        )
    tracking_uri = resolve_uri(tracking_uri, project_path, source, "server.mlflow_tracking_uri")
    registry_uri = server.mlflow_registry_uri
    if registry_uri:
        registry_uri = resolve_uri(registry_uri, project_path, source, "server.mlflow_registry_uri")
    tracking_uri, registry_uri, user, password = _without_userinfo(tracking_uri, registry_uri, source)
    experiment = tracking.experiment
    artifact_location = experiment.create_experiment_kwargs.artifact_location
    if not artifact_location and tracking_uri.startswith("sqlite:"):
        # MLflow would put a local store's artifacts under the *worker's* working directory
        # (./mlruns); like the store itself, they belong to the project
        artifact_location = DEFAULT_LOCAL_ARTIFACTS
    if artifact_location and "://" not in artifact_location:
        path = Path(artifact_location)
        artifact_location = (path if path.is_absolute() else project_path / path).as_uri()
    return MlflowSettings(
        enabled=True,
        file=file,
        tracking_uri=tracking_uri,
        registry_uri=registry_uri,
        experiment_name=experiment.name or package_name,
        artifact_location=artifact_location,
        ui_url=_ui_url(tracking_uri, file.ui),
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


def _refuse_unsupported(file: MlflowYml, source: str) -> None:
    """kedro-mlflow keys that cannot mean in a DAG run what they mean in ``kedro run``: one
    line each, naming the key, rather than silently doing something else."""
    server, tracking = file.server, file.tracking
    refusals = []
    if server.request_header_provider.type:
        refusals.append((
            "server.request_header_provider",
            "is not supported: tasks authenticate MLflow requests with MLFLOW_TRACKING_TOKEN or "
            "MLFLOW_TRACKING_USERNAME/PASSWORD (credentials.yml's entry named by "
            "'server.credentials')"))
    if tracking.run.id:
        refusals.append((
            "tracking.run.id",
            "cannot pin a run: each DAG run gets its own parent run (found again on retries "
            "and clears); remove the key"))
    if tracking.run.nested is False:
        refusals.append((
            "tracking.run.nested",
            "is false, but node runs are always nested children of the DAG run's parent run; "
            "remove the key"))
    if tracking.disable_tracking.disable_autologging is False:
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


def _ui_url(tracking_uri: str, ui: Ui) -> str | None:
    if tracking_uri.startswith(("http://", "https://")):
        return redact_url(tracking_uri)
    if tracking_uri.startswith("databricks"):
        return None
    return f"http://{ui.host}:{ui.port}"
