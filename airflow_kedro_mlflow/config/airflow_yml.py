"""``airflow.yml``, as one typed model: every key defined once, with its type, default and doc.

A block of the file (``default``, or a pipeline's) and the settings a DAG is exported and run
with are the same model, ``PipelineSettings``: ``config.pipeline`` merges the blocks and hands the
result here. Each field parses what users write (kedro-airflow's spellings included:
``schedule_interval``, ``retry_delay`` in minutes) into what tasks and the renderer use (a
``timedelta``, a tuple of asset URIs...); an unknown key, a wrong type or a bad value is a
``ConfigError`` of one line naming the file (or ``--params``) and the dotted key, e.g.
``conf/base/airflow.yml: key 'default.retries' must be a whole number >= 0, got -1``.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

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


def _duration(default_unit: str) -> Callable[[Any], timedelta]:
    """A number (in ``default_unit``) or a string with a unit: 30s, 5m, 1h, 2d."""

    def parse(value: Any) -> timedelta:
        if isinstance(value, timedelta):
            return value
        found = seconds(value, default_unit)
        if found is not None:
            return timedelta(seconds=found)
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
    if isinstance(value, tuple):
        value = list(value)
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
    if isinstance(value, (list, tuple)):
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
    if isinstance(value, tuple):
        value = dict(value)
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) and v for k, v in value.items()
    ):
        raise ValueError("must map Kedro node tags to names, e.g. {gpu: gpu_pool}")
    return tuple(value.items())


_NonEmpty = Annotated[str, Field(min_length=1, strict=True)]
_FROZEN = ConfigDict(extra="forbid", frozen=True)


class Promotion(BaseModel):
    """``promotion:``, the promotion gate of a retraining DAG.

    After the pipeline's nodes, the model logged under ``model`` in the DAG run's MLflow run is
    registered as a new version of ``registered_model``; ``alias`` moves to it only if the run's
    ``metric`` beats the value of the alias's current holder in ``direction``.
    """

    model_config = _FROZEN
    registered_model: _NonEmpty
    model: _NonEmpty
    """The name the model was logged under in the run (``mlflow.<flavor>.log_model(name=...)``;
    ``name`` of an ``MlflowModelDataset``, or ``artifact_path`` of kedro-mlflow's datasets)."""
    metric: _NonEmpty
    """A metric of the DAG run's parent run, e.g. ``random_forest.accuracy``."""
    direction: Literal["maximize", "minimize"] = "maximize"
    alias: _NonEmpty = "champion"


def _promotion(value: Any) -> Any:
    if value is not None and not isinstance(value, (Mapping, Promotion)):
        raise ValueError(f"must be a mapping with keys {', '.join(Promotion.model_fields)}, or null")
    return value


_POD_KEYS = ("image", "namespace", "project_path", "secrets", "env", "resources", "node_selector",
             "service_account_name", "kubernetes_conn_id", "image_pull_policy")


class NodeExecution(BaseModel):
    """``execution: {<node tag>: ...}``: where and how the tasks of nodes with the tag run.

    ``worker`` (the default) runs the node in the Airflow worker's own interpreter, optionally on
    another of Airflow's executors (``executor``) with an ``executor_config`` (a KubernetesExecutor
    ``pod_override``, say). ``virtualenv`` runs it with another Python (``python``) on the same
    worker; ``kubernetes_pod`` in a pod of its own (``image``), through the cncf-kubernetes
    provider. Both run the same command, ``python -m airflow_kedro_mlflow.node_runner``.
    """

    model_config = _FROZEN
    mode: Literal["worker", "virtualenv", "kubernetes_pod"] = "worker"
    executor: _NonEmpty | None = None
    executor_config: dict[str, Any] = {}
    """Plain YAML data; a ``pod_override`` is checked against the Kubernetes client's models."""
    python: _NonEmpty | None = None
    """``virtualenv``: the other environment's interpreter; ``kubernetes_pod``: the image's."""
    image: _NonEmpty | None = None
    namespace: _NonEmpty | None = None
    project_path: _NonEmpty | None = None
    """``kubernetes_pod``: the Kedro project's root inside the image."""
    secrets: tuple[_NonEmpty, ...] = ()
    """``kubernetes_pod``: Kubernetes Secrets whose keys become the pod's environment variables
    (``envFrom``), so credentials.yml's ``${oc.env:...}`` finds them; only names are rendered."""
    env: dict[str, Annotated[str, Field(strict=True)]] = {}
    resources: dict[Literal["requests", "limits"], dict[str, str | int | float]] = {}
    node_selector: dict[str, Annotated[str, Field(strict=True)]] = {}
    service_account_name: _NonEmpty | None = None
    kubernetes_conn_id: _NonEmpty | None = None
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> NodeExecution:
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

    def operator_arguments(self) -> dict[str, Any]:
        """The keyword arguments of the node's operator that this setting adds."""
        args: dict[str, Any] = {}
        if self.executor:
            args["executor"] = self.executor
        if self.executor_config:
            args["executor_config"] = dict(self.executor_config)
        if self.mode == "virtualenv":
            args["python"] = self.python
        elif self.mode == "kubernetes_pod":
            for name in ("image", "namespace", "project_path", "service_account_name",
                         "kubernetes_conn_id", "image_pull_policy"):
                if getattr(self, name):
                    args[name] = getattr(self, name)
            if self.python:
                args["python"] = self.python
            if self.secrets:
                args["secrets"] = list(self.secrets)
            for name, argument in (("env", "env"), ("resources", "container_resources"),
                                   ("node_selector", "node_selector")):
                if getattr(self, name):
                    args[argument] = dict(getattr(self, name))
        return args


def _execution(value: Any) -> Any:
    if isinstance(value, Mapping) and all(
            isinstance(k, str) and isinstance(v, (Mapping, NodeExecution)) for k, v in value.items()):
        return value
    raise ValueError("must map Kedro node tags to execution settings, e.g. "
                     "{legacy: {mode: virtualenv, python: /opt/venvs/legacy/bin/python}}")


@dataclass(frozen=True)
class CallableRef:
    """A callable a DAG file imports by path (a callback or notifier of the user's)."""

    path: str


DEFAULT_INTERMEDIATE_STORE = "data/airflow_intermediate"
DEFAULT_INTERMEDIATE_RETENTION = timedelta(days=7)
_TASK_CALLBACKS = ("on_failure_callback", "on_success_callback", "on_retry_callback")
_DAG_CALLBACKS = {"dag_on_failure_callback": "on_failure_callback",
                  "dag_on_success_callback": "on_success_callback"}


class PipelineSettings(BaseModel):
    """What the DAG of one pipeline is configured with: a block of airflow.yml, or the
    ``default`` block merged with the pipeline's and ``--params`` (``config.pipeline``).

    A key left out, or set to null, takes its default (null in a pipeline's block undoes what
    ``default`` set: ``promotion: null`` turns a gate off).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    intermediate_store: Annotated[str, _parser(_string)] = DEFAULT_INTERMEDIATE_STORE
    """Where data crossing task boundaries is kept during a DAG run: a local directory (relative
    paths are relative to the project root) or an fsspec URL."""
    intermediate_store_credentials: Annotated[str | None, _parser(_string)] = None
    """An entry of credentials.yml with the store's fsspec options (s3fs: key, secret,
    client_kwargs.endpoint_url...), the same shape as a Kedro dataset's credentials."""
    intermediate_retention: Annotated[timedelta, _parser(_duration("d"))] = (
        DEFAULT_INTERMEDIATE_RETENTION)
    """How long a DAG run's intermediate data is kept after the run ended, so that any of its
    tasks can be cleared and rerun (days, or ``12h``, ``30m``; ``0``: removed at the end)."""
    dag_id: Annotated[str | None, _parser(_airflow_id)] = None
    """Overrides the DAG id derived from the package and pipeline names."""
    dag_id_suffix: Annotated[str, _parser(_airflow_id)] = ""
    """Appended to every DAG id, e.g. to export one project for two envs into one dags/ folder.
    (Kedro's config loader drops blocks whose name starts with ``_``, such as ``__default__``,
    so a per-pipeline ``dag_id`` cannot be set for the default pipeline; a suffix in ``default``
    can.)"""
    schedule: Annotated[str | tuple[str, ...] | None, _parser(_schedule)] = Field(
        None, validation_alias=AliasChoices("schedule", "schedule_interval"))
    """A cron expression or preset (``@daily``), or asset URIs whose update triggers a run
    (``[kedro://pkg/dataset, s3://...]``); ``None`` (the default) for manual runs only.
    ``schedule_interval`` is kedro-airflow's (Airflow 2) name for it."""
    start_date: Annotated[datetime | None, _parser(_start_date)] = None
    catchup: Annotated[bool, _parser(_bool)] = False
    max_active_runs: Annotated[int | None, _parser(_positive)] = None
    max_active_tasks: Annotated[int | None, _parser(_positive)] = None
    dagrun_timeout: Annotated[timedelta | None, _parser(_duration("m"))] = None
    owner: Annotated[str | None, _parser(_string)] = None
    retries: Annotated[int | None, _parser(_count)] = None
    retry_delay: Annotated[timedelta | None, _parser(_duration("m"))] = None
    """kedro-airflow's ``retry_delay`` is in minutes; a string may give a unit: ``30s``, ``2h``."""
    retry_exponential_backoff: Annotated[float | None, _parser(_backoff)] = None
    max_retry_delay: Annotated[timedelta | None, _parser(_duration("m"))] = None
    execution_timeout: Annotated[timedelta | None, _parser(_duration("m"))] = None
    depends_on_past: Annotated[bool | None, _parser(_bool)] = None
    email: Annotated[tuple[str, ...], _parser(_strings)] = ()
    email_on_failure: Annotated[bool | None, _parser(_bool)] = None
    email_on_retry: Annotated[bool | None, _parser(_bool)] = None
    on_failure_callback: Annotated[tuple[str, ...], _parser(_callbacks)] = ()
    """Import paths of callables (``package.module.function``) every task calls; likewise
    ``on_success_callback``, ``on_retry_callback`` and the DAG's ``dag_on_*_callback``."""
    on_success_callback: Annotated[tuple[str, ...], _parser(_callbacks)] = ()
    on_retry_callback: Annotated[tuple[str, ...], _parser(_callbacks)] = ()
    dag_on_failure_callback: Annotated[tuple[str, ...], _parser(_callbacks)] = ()
    dag_on_success_callback: Annotated[tuple[str, ...], _parser(_callbacks)] = ()
    tags: Annotated[tuple[str, ...], _parser(_strings)] = ()
    promotion: Annotated[Promotion | None, _parser(_promotion)] = None
    """Register the run's model and promote it past a metric gate."""
    pools: Annotated[tuple[tuple[str, str], ...], _parser(_tag_routes)] = ()
    """(node tag, Airflow pool) pairs: a node task with the tag runs in the pool (first match)."""
    queues: Annotated[tuple[tuple[str, str], ...], _parser(_tag_routes)] = ()
    """(node tag, executor queue) pairs: a node task with the tag goes to the queue (e.g. a Celery
    queue served by GPU workers)."""
    execution: Annotated[dict[str, NodeExecution], _parser(_execution)] = {}
    """How the tasks of nodes with a tag run; a node task takes the first configured tag it has."""
    group_by: Annotated[str | None, _parser(_group_by)] = None
    """``memory``: nodes joined by in-memory data run in one task; ``namespace``: the nodes of a
    top-level namespace run in one task (kedro-airflow's ``--group-by``); ``None``: a task per node."""
    dag_params: Annotated[bool, _parser(_bool)] = True
    """The pipeline's parameters as DAG params (the trigger form). Airflow copies and serializes
    a DAG's params with every task, which a DAG of thousands of tasks may not want to pay."""

    @model_validator(mode="before")
    @classmethod
    def _nulls_take_defaults(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            return {key: item for key, item in value.items() if item is not None}
        return value

    @property
    def schedule_assets(self) -> tuple[str, ...]:
        """The asset URIs of an asset schedule (empty for a cron, a preset or none)."""
        return self.schedule if isinstance(self.schedule, tuple) else ()

    def dag_arguments(self) -> dict[str, Any]:
        """Keyword arguments of ``DAG(...)`` that differ from Airflow's defaults."""
        args: dict[str, Any] = {"schedule": self.schedule, "catchup": self.catchup}
        for name in ("start_date", "max_active_runs", "max_active_tasks", "dagrun_timeout"):
            if getattr(self, name) is not None:
                args[name] = getattr(self, name)
        for key, argument in _DAG_CALLBACKS.items():
            if getattr(self, key):
                args[argument] = [CallableRef(path) for path in getattr(self, key)]
        return args

    def default_args(self) -> dict[str, Any]:
        """``default_args`` of the DAG's tasks."""
        args: dict[str, Any] = {}
        for name in ("owner", "retries", "retry_delay", "retry_exponential_backoff",
                     "max_retry_delay", "execution_timeout", "depends_on_past",
                     "email_on_failure", "email_on_retry"):
            if getattr(self, name) is not None:
                args[name] = getattr(self, name)
        if self.email:
            args["email"] = list(self.email)
        for name in _TASK_CALLBACKS:
            if getattr(self, name):
                args[name] = [CallableRef(path) for path in getattr(self, name)]
        return args

    def callables(self) -> list[CallableRef]:
        """Every callable the DAG file must import, in a stable order."""
        paths = {path for name in (*_TASK_CALLBACKS, *_DAG_CALLBACKS) for path in getattr(self, name)}
        return [CallableRef(path) for path in sorted(paths)]

    def node_task_arguments(self, node_tags: tuple[str, ...]) -> dict[str, str]:
        """``pool``/``queue`` of a node's task, from the first configured tag the node has."""
        args: dict[str, str] = {}
        for argument, routes in (("pool", self.pools), ("queue", self.queues)):
            for tag, target in routes:
                if tag in node_tags:
                    args[argument] = target
                    break
        return args

    def node_execution(self, node_tags: tuple[str, ...]) -> NodeExecution | None:
        """How a node task with ``node_tags`` runs: the first configured tag it has, if any."""
        return next((spec for tag, spec in self.execution.items() if tag in node_tags), None)


ALIASES = {str(alias): name for name, info in PipelineSettings.model_fields.items()
           if isinstance(info.validation_alias, AliasChoices)
           for alias in info.validation_alias.choices if alias != name}
"""Other names of a key (``schedule_interval``: ``schedule``); the later one set wins."""
KNOWN_KEYS = tuple(sorted({*PipelineSettings.model_fields, *ALIASES}))


def validate_block(block: Any, origin: str, block_name: str) -> PipelineSettings:
    """One block (or the merged blocks), checked; ``origin`` (a file, or ``--params``) and
    ``block_name`` name the culprit when it is wrong."""
    prefix = f"{block_name}." if block_name else ""
    if not isinstance(block, Mapping):
        raise ConfigError(
            f"{origin}: key '{block_name}' must be a mapping, got {type(block).__name__}"
        )
    try:
        return PipelineSettings.model_validate(dict(block))
    except ValidationError as exc:
        raise ConfigError(_first_error(exc, origin, prefix)) from None


def _first_error(exc: ValidationError, origin: str, prefix: str) -> str:
    error = exc.errors()[0]
    where = (prefix + ".".join(str(part) for part in error["loc"])).replace(".[key]", "")
    if error["type"] == "extra_forbidden":
        if len(error["loc"]) > 1:
            nested = NodeExecution if error["loc"][0] == "execution" else Promotion
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
