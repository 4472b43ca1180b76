"""The schema of one block of ``airflow.yml``, as a typed model: every key is honoured or refused.

Each field parses what users write (kedro-airflow's spellings included: ``schedule_interval``,
``retry_delay`` in minutes) into what ``PipelineSettings`` holds; an unknown key, a wrong type
or a bad value is a ``ConfigError`` of one line naming the file (or ``--params``) and the dotted
key, e.g. ``conf/base/airflow.yml: key 'default.retries' must be a whole number >= 0, got -1``.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from airflow_kedro_mlflow.core.durations import seconds
from airflow_kedro_mlflow.core.errors import ConfigError

GROUP_BY_CHOICES = ("memory", "namespace")
"""How ``group_by`` may group nodes into tasks (null: a task per node)."""

SCHEDULE_PRESETS = {
    "@once", "@continuous", "@hourly", "@daily", "@weekly", "@monthly", "@quarterly", "@yearly",
    "@annually", "@midnight",
}
_AIRFLOW_ID = re.compile(r"^[A-Za-z0-9_.-]*$")
_IMPORT_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")


def _parser(parse: Callable[[Any], Any]) -> Any:
    return BeforeValidator(parse)


def _string(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"must be a string, got {type(value).__name__}")
    return value


def _airflow_id(value: Any) -> str:
    text = _string(value)
    if not _AIRFLOW_ID.match(text):
        raise ValueError(f"may hold only letters, digits, '_', '-' and '.' (an Airflow id), got {text!r}")
    return text


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"must be true or false, got {value!r}")
    return value


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"must be a whole number >= 0, got {value!r}")
    return value


def _positive(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"must be a whole number >= 1, got {value!r}")
    return value


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"must be a number >= 0, got {value!r}")
    return float(value)


def _duration(default_unit: str) -> Callable[[Any], float]:
    """Seconds from a number (in ``default_unit``) or a string with a unit: 30s, 5m, 1h, 2d."""

    def parse(value: Any) -> float:
        found = seconds(value, default_unit)
        if found is not None:
            return found
        unit_name = {"m": "minutes", "s": "seconds", "d": "days"}[default_unit]
        raise ValueError(
            f"must be {unit_name} (a number) or a duration such as '30s', '5m', '1h'; got {value!r}"
        )

    return parse


def _backoff(value: Any) -> float:
    """Airflow 3's multiplier; ``true``/``false`` as in Airflow 2 (and kedro-airflow)."""
    if isinstance(value, bool):
        return 2.0 if value else 0.0
    return _number(value)


def _strings(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError("must be a list of strings")
    return tuple(value)


def _callbacks(value: Any) -> tuple[str, ...]:
    paths = _strings(value)
    bad = [p for p in paths if not _IMPORT_PATH.match(p)]
    if bad:
        raise ValueError(
            f"must name callables by import path (package.module.function), got {bad[0]!r}"
        )
    return paths


def _schedule(value: Any) -> str | tuple[str, ...] | None:
    if value is None or value == "None" or value == "null":
        return None
    if isinstance(value, list):
        if not value or not all(isinstance(v, str) and _is_asset_uri(v) for v in value):
            raise ValueError(
                "as a list must hold asset URIs such as 'kedro://package/dataset', "
                "'s3://bucket/key' or 'models:/registered_model@alias'"
            )
        return tuple(value)
    if not isinstance(value, str):
        raise ValueError(
            "must be a cron expression, a preset such as '@daily', a list of asset URIs, or null"
        )
    if value.startswith("@"):
        if value not in SCHEDULE_PRESETS:
            raise ValueError(f"unknown preset {value!r} (known: {', '.join(sorted(SCHEDULE_PRESETS))})")
        return value
    from croniter import croniter

    if not croniter.is_valid(value):
        raise ValueError(f"{value!r} is not a valid cron expression")
    return value


def _is_asset_uri(value: str) -> bool:
    """A URI with a scheme: ``s3://...``, ``kedro://...`` or MLflow's ``models:/name@alias``
    (the Asset a promotion gate updates when the alias moves)."""
    return "://" in value or (value.startswith("models:/") and len(value) > len("models:/"))


def _start_date(value: Any) -> datetime:
    if isinstance(value, list) and 3 <= len(value) <= 6 and all(isinstance(v, int) for v in value):
        return datetime(*value).replace(tzinfo=UTC)
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise ValueError("must be a date: [YYYY, M, D] or 'YYYY-MM-DD'")


def _group_by(value: Any) -> str | None:
    if value is None:
        return None
    if value not in GROUP_BY_CHOICES:
        raise ValueError(f"must be one of {', '.join(GROUP_BY_CHOICES)} (or null), got {value!r}")
    return str(value)


def _tag_routes(value: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) and v for k, v in value.items()
    ):
        raise ValueError("must map Kedro node tags to names, e.g. {gpu: gpu_pool}")
    return tuple(value.items())


_NonEmpty = Annotated[str, Field(min_length=1, strict=True)]


class Promotion(BaseModel):
    """``promotion:``: register the run's model, move the alias only if it is better."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    registered_model: _NonEmpty
    model: _NonEmpty
    metric: _NonEmpty
    direction: Literal["maximize", "minimize"] = "maximize"
    alias: _NonEmpty = "champion"


def _promotion(value: Any) -> Any:
    if value is not None and not isinstance(value, Mapping):
        raise ValueError(f"must be a mapping with keys {', '.join(Promotion.model_fields)}, or null")
    return value


_POD_KEYS = ("image", "namespace", "project_path", "secrets", "env", "resources", "node_selector",
             "service_account_name", "kubernetes_conn_id", "image_pull_policy")


class Execution(BaseModel):
    """``execution: {<node tag>: ...}``: where the tasks of nodes with the tag run."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    mode: Literal["worker", "virtualenv", "kubernetes_pod"] = "worker"
    executor: _NonEmpty | None = None
    executor_config: dict[str, Any] = {}
    python: _NonEmpty | None = None
    image: _NonEmpty | None = None
    namespace: _NonEmpty | None = None
    project_path: _NonEmpty | None = None
    secrets: list[_NonEmpty] = []
    env: dict[str, Annotated[str, Field(strict=True)]] = {}
    resources: dict[Literal["requests", "limits"], dict[str, str | int | float]] = {}
    node_selector: dict[str, Annotated[str, Field(strict=True)]] = {}
    service_account_name: _NonEmpty | None = None
    kubernetes_conn_id: _NonEmpty | None = None
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Execution:
        if self.mode == "virtualenv" and not self.python:
            raise ValueError("has mode 'virtualenv', which needs 'python' (the other "
                             "environment's interpreter, e.g. /opt/venvs/legacy/bin/python)")
        if self.mode == "kubernetes_pod":
            lacking = [key for key in ("image", "project_path") if not getattr(self, key)]
            if lacking:
                raise ValueError(f"has mode 'kubernetes_pod', which needs '{lacking[0]}' "
                                 "(image: the pod's image; project_path: the project's root in it)")
        else:
            stray = [key for key in _POD_KEYS if key in self.model_fields_set]
            if stray:
                raise ValueError(f"sets '{stray[0]}', which only mode 'kubernetes_pod' takes "
                                 f"(mode is '{self.mode}')")
        if self.mode == "worker" and self.python:
            raise ValueError("sets 'python', which only modes 'virtualenv' and 'kubernetes_pod' take")
        pod_override = (self.executor_config or {}).get("pod_override")
        if pod_override is not None and not isinstance(pod_override, dict):
            raise ValueError("has an 'executor_config.pod_override' that is not a mapping (a "
                             "Kubernetes pod: {spec: {containers: [{name: base, ...}]}})")
        if pod_override is not None and importlib.util.find_spec("kubernetes") is not None:
            from airflow_kedro_mlflow.config.pod_spec import pod_override as to_pod

            try:  # at export already, where the Kubernetes client is there to say
                to_pod(pod_override)
            except ConfigError as exc:
                raise ValueError(str(exc)) from None
        return self

    def settings(self) -> dict[str, Any]:
        """The keyword arguments of ``config.NodeExecution`` (hashable: tuples, not dicts)."""
        return {key: tuple(value.items()) if isinstance(value, dict)
                else tuple(value) if isinstance(value, list) else value
                for key, value in self.model_dump().items()}


def _execution(value: Any) -> Any:
    if value is not None and (not isinstance(value, Mapping) or not all(
            isinstance(k, str) and isinstance(v, Mapping) for k, v in value.items())):
        raise ValueError("must map Kedro node tags to execution settings, e.g. "
                         "{legacy: {mode: virtualenv, python: /opt/venvs/legacy/bin/python}}")
    return value


class Block(BaseModel):
    """One block of airflow.yml (``default``, or a pipeline's): each key and what it holds."""

    model_config = ConfigDict(extra="forbid")

    intermediate_store: Annotated[str | None, _parser(_string)] = None
    intermediate_store_credentials: Annotated[str | None, _parser(_string)] = None
    intermediate_retention: Annotated[float | None, _parser(_duration("d"))] = None  # days
    dag_id: Annotated[str | None, _parser(_airflow_id)] = None
    dag_id_suffix: Annotated[str | None, _parser(_airflow_id)] = None
    schedule: Annotated[Any, _parser(_schedule)] = None
    schedule_interval: Annotated[Any, _parser(_schedule)] = None  # kedro-airflow's (Airflow 2) name
    start_date: Annotated[datetime | None, _parser(_start_date)] = None
    catchup: Annotated[bool | None, _parser(_bool)] = None
    max_active_runs: Annotated[int | None, _parser(_positive)] = None
    max_active_tasks: Annotated[int | None, _parser(_positive)] = None
    dagrun_timeout: Annotated[float | None, _parser(_duration("m"))] = None
    owner: Annotated[str | None, _parser(_string)] = None
    retries: Annotated[int | None, _parser(_count)] = None
    retry_delay: Annotated[float | None, _parser(_duration("m"))] = None  # kedro-airflow: minutes
    retry_exponential_backoff: Annotated[float | None, _parser(_backoff)] = None
    max_retry_delay: Annotated[float | None, _parser(_duration("m"))] = None
    execution_timeout: Annotated[float | None, _parser(_duration("m"))] = None
    depends_on_past: Annotated[bool | None, _parser(_bool)] = None
    email: Annotated[tuple[str, ...] | None, _parser(_strings)] = None
    email_on_failure: Annotated[bool | None, _parser(_bool)] = None
    email_on_retry: Annotated[bool | None, _parser(_bool)] = None
    on_failure_callback: Annotated[tuple[str, ...] | None, _parser(_callbacks)] = None
    on_success_callback: Annotated[tuple[str, ...] | None, _parser(_callbacks)] = None
    on_retry_callback: Annotated[tuple[str, ...] | None, _parser(_callbacks)] = None
    dag_on_failure_callback: Annotated[tuple[str, ...] | None, _parser(_callbacks)] = None
    dag_on_success_callback: Annotated[tuple[str, ...] | None, _parser(_callbacks)] = None
    tags: Annotated[tuple[str, ...] | None, _parser(_strings)] = None
    promotion: Annotated[Promotion | None, _parser(_promotion)] = None
    pools: Annotated[tuple[tuple[str, str], ...] | None, _parser(_tag_routes)] = None
    queues: Annotated[tuple[tuple[str, str], ...] | None, _parser(_tag_routes)] = None
    execution: Annotated[dict[str, Execution] | None, _parser(_execution)] = None
    group_by: Annotated[str | None, _parser(_group_by)] = None
    dag_params: Annotated[bool | None, _parser(_bool)] = None


KNOWN_KEYS = tuple(sorted(Block.model_fields))


def parse_block(block: Any, origin: str, block_name: str) -> dict[str, Any]:
    """The keys ``block`` sets, parsed; ``origin`` (a file, or ``--params``) and ``block_name``
    name the culprit when it is wrong."""
    prefix = f"{block_name}." if block_name else ""
    if not isinstance(block, Mapping):
        raise ConfigError(
            f"{origin}: key '{block_name}' must be a mapping, got {type(block).__name__}"
        )
    try:
        model = Block.model_validate(dict(block))
    except ValidationError as exc:
        raise ConfigError(_first_error(exc, origin, prefix)) from None
    return {key: getattr(model, key) for key in model.model_fields_set}


def _first_error(exc: ValidationError, origin: str, prefix: str) -> str:
    error = exc.errors()[0]
    where = (prefix + ".".join(str(part) for part in error["loc"])).replace(".[key]", "")
    if error["type"] == "extra_forbidden":
        if len(error["loc"]) > 1:
            nested = Execution if error["loc"][0] == "execution" else Promotion
            known = ", ".join(nested.model_fields)
            parent = where.rsplit(".", 1)[0]
            return f"{origin}: key '{parent}' has unknown key '{where}' (known: {known})"
        return f"{origin}: unknown key '{where}' (known keys: {', '.join(KNOWN_KEYS)})"
    if error["type"] == "missing":
        return f"{origin}: key '{where.rsplit('.', 1)[0]}' lacks '{where}'"
    if error["type"] == "literal_error":
        expected = str(error.get("ctx", {}).get("expected", "")).replace("'", "")
        return f"{origin}: key '{where}' is {error['input']!r}; use one of {expected.replace(' or ', ', ')}"
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] in ("string_type", "string_too_short"):
        message = f"must be a non-empty string, got {error['input']!r}"
    return f"{origin}: key '{where}' {message}"
