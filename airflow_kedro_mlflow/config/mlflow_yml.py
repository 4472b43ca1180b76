"""The schema of ``mlflow.yml`` (kedro-mlflow 2's), as typed models.

Unknown keys are errors, as in kedro-mlflow; values are checked strictly (``flatten: "yes"`` is
not ``true``); a key set to null takes its default. Every error is one line naming the file and
the dotted key: ``conf/base/mlflow.yml: key 'tracking.run.nested' must be bool, got str``.
What the keys mean for a DAG run is ``mlflow_config``'s business.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from airflow_kedro_mlflow.core.errors import ConfigError


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
    flatten: bool | None = None
    """Unset flattens here; kedro-mlflow's own default is false."""
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
    server: Server = Field(default_factory=Server)
    tracking: Tracking = Field(default_factory=Tracking)
    ui: Ui = Field(default_factory=Ui)


_TYPE_NAMES = {"string_type": "str", "bool_type": "bool", "list_type": "list", "dict_type": "dict",
               "model_type": "a mapping", "int_type": "int"}


def validate(config: Any, source: str) -> dict[str, Any]:
    """``mlflow.yml``'s content, checked, with every default filled in (nested dicts)."""
    try:
        return MlflowYml.model_validate(config if config is not None else {}).model_dump()
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
