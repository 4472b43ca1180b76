"""Typed settings from the Kedro project's ``conf/<env>/airflow.yml``.

The file follows kedro-airflow's layout and keys: a ``default`` block and one block per pipeline,
the pipeline's block overriding ``default`` key by key. It is read with the project's own config
loader, so env overrides work as elsewhere in Kedro. Every error names the files and the dotted
key, because users fix config by editing a file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from airflow_kedro_mlflow.config.airflow_yml import KNOWN_KEYS, parse_block
from airflow_kedro_mlflow.config.kedro_project import describe_sources, read_config
from airflow_kedro_mlflow.core.errors import ConfigError
from airflow_kedro_mlflow.core.ids import dag_id_for

CONFIG_KEY = "airflow"
CONFIG_PATTERNS = ["airflow*", "airflow/**"]
DEFAULT_INTERMEDIATE_STORE = "data/airflow_intermediate"
DEFAULT_INTERMEDIATE_RETENTION_SECONDS = 7 * 86400.0
PROMOTION_DIRECTIONS = ("maximize", "minimize")
EXECUTION_MODES = ("worker", "virtualenv", "kubernetes_pod")


@dataclass(frozen=True)
class Duration:
    """A duration in a DAG file: ``timedelta(seconds=...)``."""

    seconds: float


@dataclass(frozen=True)
class CallableRef:
    """A callable a DAG file imports by path (a callback or notifier of the user's)."""

    path: str


@dataclass(frozen=True)
class PromotionSettings:
    """The promotion gate of a retraining DAG (``promotion:`` in airflow.yml).

    After the pipeline's nodes, the model logged under ``model`` in the DAG run's MLflow run is
    registered as a new version of ``registered_model``; ``alias`` moves to it only if the run's
    ``metric`` beats the value of the alias's current holder in ``direction``.
    """

    registered_model: str
    model: str
    """The name the model was logged under in the run (``mlflow.<flavor>.log_model(name=...)``;
    ``name`` of an ``MlflowModelDataset``, or ``artifact_path`` of kedro-mlflow's datasets)."""
    metric: str
    """A metric of the DAG run's parent run, e.g. ``random_forest.accuracy``."""
    direction: str = "maximize"
    alias: str = "champion"


@dataclass(frozen=True)
class NodeExecution:
    """Where and how the tasks of nodes with one tag run (``execution: {<tag>: ...}``).

    ``worker`` (the default) runs the node in the Airflow worker's own interpreter, optionally on
    another of Airflow's executors (``executor``) with an ``executor_config`` (a KubernetesExecutor
    ``pod_override``, say). ``virtualenv`` runs it with another Python (``python``) on the same
    worker; ``kubernetes_pod`` in a pod of its own (``image``), through the cncf-kubernetes
    provider. Both run the same command, ``python -m airflow_kedro_mlflow.node_runner``.
    """

    mode: str = "worker"
    executor: str | None = None
    executor_config: tuple[tuple[str, Any], ...] = ()
    """As ``(key, value)`` pairs (the settings are hashable); plain YAML data."""
    python: str | None = None
    """``virtualenv``: the other environment's interpreter; ``kubernetes_pod``: the image's."""
    image: str | None = None
    namespace: str | None = None
    project_path: str | None = None
    """``kubernetes_pod``: the Kedro project's root inside the image."""
    secrets: tuple[str, ...] = ()
    """``kubernetes_pod``: Kubernetes Secrets whose keys become the pod's environment variables
    (``envFrom``), so credentials.yml's ``${oc.env:...}`` finds them; only names are rendered."""
    env: tuple[tuple[str, str], ...] = ()
    resources: tuple[tuple[str, Any], ...] = ()
    node_selector: tuple[tuple[str, str], ...] = ()
    service_account_name: str | None = None
    kubernetes_conn_id: str | None = None
    image_pull_policy: str | None = None

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


@dataclass(frozen=True)
class PipelineSettings:
    """What the DAG of one pipeline is configured with."""

    intermediate_store: str = DEFAULT_INTERMEDIATE_STORE
    """Where data crossing task boundaries is kept during a DAG run: a local directory (relative
    paths are relative to the project root) or an fsspec URL."""
    intermediate_store_credentials: str | None = None
    """An entry of credentials.yml with the store's fsspec options (s3fs: key, secret,
    client_kwargs.endpoint_url...), the same shape as a Kedro dataset's credentials."""
    intermediate_retention_seconds: float = DEFAULT_INTERMEDIATE_RETENTION_SECONDS
    """How long a DAG run's intermediate data is kept after the run ended, so that any of its
    tasks can be cleared and rerun (``intermediate_retention``: days, or ``12h``, ``30m``)."""
    dag_id: str | None = None
    """Overrides the DAG id derived from the package and pipeline names."""
    dag_id_suffix: str = ""
    """Appended to every DAG id, e.g. to export one project for two envs into one dags/ folder.
    (Kedro's config loader drops blocks whose name starts with ``_``, such as ``__default__``,
    so a per-pipeline ``dag_id`` cannot be set for the default pipeline; a suffix in ``default``
    can.)"""
    schedule: str | None = None
    """A cron expression or preset (``@daily``); ``None`` (the default) for manual runs only."""
    schedule_assets: tuple[str, ...] = ()
    """Asset URIs whose update triggers a run (``schedule: [kedro://pkg/dataset, s3://...]``)."""
    start_date: datetime | None = None
    catchup: bool = False
    max_active_runs: int | None = None
    owner: str | None = None
    retries: int | None = None
    retry_delay_seconds: float | None = None
    """kedro-airflow's ``retry_delay`` is in minutes; a string may give a unit: ``30s``, ``2h``."""
    tags: tuple[str, ...] = field(default_factory=tuple)
    promotion: PromotionSettings | None = None
    """Register the run's model and promote it past a metric gate; ``null`` in a pipeline's block
    turns off a gate configured in ``default``."""
    pools: tuple[tuple[str, str], ...] = ()
    """(node tag, Airflow pool) pairs: a node task with the tag runs in the pool (first match)."""
    queues: tuple[tuple[str, str], ...] = ()
    """(node tag, executor queue) pairs: a node task with the tag goes to the queue (e.g. a Celery
    queue served by GPU workers)."""
    execution: tuple[tuple[str, NodeExecution], ...] = ()
    """(node tag, how its tasks run) pairs; a node task takes the first configured tag it has."""
    group_by: str | None = None
    """``memory``: nodes joined by in-memory data run in one task; ``namespace``: the nodes of a
    top-level namespace run in one task (kedro-airflow's ``--group-by``); ``None``: a task per node."""
    max_active_tasks: int | None = None
    dagrun_timeout_seconds: float | None = None
    execution_timeout_seconds: float | None = None
    retry_exponential_backoff: float | None = None
    max_retry_delay_seconds: float | None = None
    depends_on_past: bool | None = None
    email: tuple[str, ...] = ()
    email_on_failure: bool | None = None
    email_on_retry: bool | None = None
    dag_params: bool = True
    """The pipeline's parameters as DAG params (the trigger form). Airflow copies and serializes
    a DAG's params with every task, which a DAG of thousands of tasks may not want to pay."""
    task_callbacks: tuple[tuple[str, tuple[str, ...]], ...] = ()
    """(``on_failure_callback``..., import paths) of every task (``default_args``)."""
    dag_callbacks: tuple[tuple[str, tuple[str, ...]], ...] = ()
    """(``on_failure_callback``/``on_success_callback``, import paths) of the DAG itself."""

    def dag_arguments(self) -> dict[str, Any]:
        """Keyword arguments of ``DAG(...)`` that differ from Airflow's defaults."""
        schedule: Any = self.schedule_assets or self.schedule
        args: dict[str, Any] = {"schedule": schedule, "catchup": self.catchup}
        if self.start_date is not None:
            args["start_date"] = self.start_date
        if self.max_active_runs is not None:
            args["max_active_runs"] = self.max_active_runs
        if self.max_active_tasks is not None:
            args["max_active_tasks"] = self.max_active_tasks
        if self.dagrun_timeout_seconds is not None:
            args["dagrun_timeout"] = Duration(self.dagrun_timeout_seconds)
        for argument, paths in self.dag_callbacks:
            args[argument] = [CallableRef(path) for path in paths]
        return args

    def callables(self) -> list[CallableRef]:
        """Every callable the DAG file must import, in a stable order."""
        paths = {p for _, ps in (*self.task_callbacks, *self.dag_callbacks) for p in ps}
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
        return next((spec for tag, spec in self.execution if tag in node_tags), None)

    def default_args(self) -> dict[str, Any]:
        """``default_args`` of the DAG's tasks."""
        args: dict[str, Any] = {}
        if self.owner is not None:
            args["owner"] = self.owner
        if self.retries is not None:
            args["retries"] = self.retries
        if self.retry_delay_seconds is not None:
            args["retry_delay"] = Duration(self.retry_delay_seconds)
        if self.retry_exponential_backoff is not None:
            args["retry_exponential_backoff"] = self.retry_exponential_backoff
        if self.max_retry_delay_seconds is not None:
            args["max_retry_delay"] = Duration(self.max_retry_delay_seconds)
        if self.execution_timeout_seconds is not None:
            args["execution_timeout"] = Duration(self.execution_timeout_seconds)
        for name in ("depends_on_past", "email_on_failure", "email_on_retry"):
            if getattr(self, name) is not None:
                args[name] = getattr(self, name)
        if self.email:
            args["email"] = list(self.email)
        for argument, paths in self.task_callbacks:
            args[argument] = [CallableRef(path) for path in paths]
        return args


_FIELDS = {  # airflow.yml key -> PipelineSettings field, where they differ
    "schedule_interval": "schedule",
    "retry_delay": "retry_delay_seconds",
    "dagrun_timeout": "dagrun_timeout_seconds",
    "execution_timeout": "execution_timeout_seconds",
    "max_retry_delay": "max_retry_delay_seconds",
    "intermediate_retention": "intermediate_retention_seconds",
}
_TASK_CALLBACKS = ("on_failure_callback", "on_success_callback", "on_retry_callback")
_DAG_CALLBACKS = {"dag_on_failure_callback": "on_failure_callback",
                  "dag_on_success_callback": "on_success_callback"}


def settings_from_dict(
    config: Mapping[str, Any],
    pipeline_name: str,
    source: str,
    overrides: Mapping[str, Any] | None = None,
    pipelines: list[str] | None = None,
) -> PipelineSettings:
    """Merge the ``default`` block with ``pipeline_name``'s block and validate the result.

    ``source`` names the file(s) in error messages. ``overrides`` (``--params``) come last, a
    dotted key setting one key of a mapping (``promotion.metric``). With ``pipelines`` (the
    registered ones, at export) every top-level key must be ``default`` or one of them.
    """
    if not isinstance(config, Mapping):
        raise ConfigError(f"{source}: expected a mapping of blocks, got {type(config).__name__}")
    if pipelines is not None:
        _check_blocks(config, pipelines, source)
    layers: list[tuple[str, str, Any]] = [
        (source, name, config.get(name) or {}) for name in ("default", pipeline_name)
    ]
    if overrides:
        effective: dict[str, Any] = {}
        for _, _, block in layers:
            if isinstance(block, Mapping):
                effective.update(block)
        layers.append(("--params", "", _dotted(overrides, effective)))
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    callbacks: dict[str, tuple[str, ...]] = {}
    for origin, block_name, block in layers:
        for key, value in _parse(block, origin, block_name).items():
            where = f"{block_name}.{key}" if block_name else key
            field_name = _FIELDS.get(key, key)
            origins[field_name] = f"{origin}: key '{where}'"
            if key in _TASK_CALLBACKS or key in _DAG_CALLBACKS:
                callbacks[key] = value or ()
            elif field_name == "schedule":  # a schedule is either a timetable or assets
                values["schedule"], values["schedule_assets"] = (
                    (None, value) if isinstance(value, tuple) else (value, ())
                )
            elif key == "promotion":
                values["promotion"] = None if value is None else PromotionSettings(**value.model_dump())
            elif key == "execution":
                values["execution"] = tuple(
                    (tag, NodeExecution(**spec.settings())) for tag, spec in (value or {}).items()
                )
            elif key in ("tags", "email", "pools", "queues"):
                values[field_name] = value or ()
            elif key == "dag_id_suffix":
                values[field_name] = value or ""
            else:
                values[field_name] = value
    if values.get("catchup") and values.get("start_date") is None:
        raise ConfigError(f"{origins['catchup']} is true, which needs 'start_date' (from when to "
                          "catch up)")
    values["task_callbacks"] = tuple((k, v) for k, v in callbacks.items() if k in _TASK_CALLBACKS and v)
    values["dag_callbacks"] = tuple(
        (_DAG_CALLBACKS[k], v) for k, v in callbacks.items() if k in _DAG_CALLBACKS and v
    )
    for name in ("catchup", "dag_params"):
        if values.get(name) is None:
            values.pop(name, None)
    return PipelineSettings(**{k: v for k, v in values.items() if v is not None or k in _NULLABLE})


_NULLABLE = {"promotion", "schedule", "group_by", "dag_id", "start_date"}


def _parse(block: Any, origin: str, block_name: str) -> dict[str, Any]:
    """``airflow_yml.parse_block`` (typed models: pydantic), not even imported for no keys."""
    if isinstance(block, Mapping) and not block:
        return {}

    return parse_block(block, origin, block_name)


def _check_blocks(config: Mapping[str, Any], pipelines: list[str], source: str) -> None:
    """Every top-level key is a block, ``default`` or a registered pipeline's name, and valid
    (not only those of the pipeline being exported)."""
    for key in config:
        if key == "default" or key in pipelines:
            _parse(config[key] or {}, source, str(key))
            continue

        if key in KNOWN_KEYS:
            raise ConfigError(
                f"{source}: key '{key}' is outside any block: put it under 'default' (every "
                "pipeline) or under a pipeline's name"
            )
        raise ConfigError(
            f"{source}: block '{key}' names no pipeline of the project (pipelines: "
            f"{', '.join(sorted(pipelines))}; 'default' applies to all)"
        )


def load_pipeline_settings(
    config_loader: Any,
    conf_source: str | Path,
    env: str | None,
    pipeline_name: str,
    overrides: Mapping[str, Any] | None = None,
    pipelines: list[str] | None = None,
) -> PipelineSettings:
    """Read ``airflow.yml`` through a Kedro config loader; defaults when the project has none.
    ``pipelines``: the registered ones, to check every block names one (at export)."""
    source = describe_sources(conf_source, env, CONFIG_KEY)
    config = read_config(config_loader, CONFIG_KEY, CONFIG_PATTERNS, source)
    return settings_from_dict(config or {}, pipeline_name, source, overrides, pipelines)


def parse_overrides(text: str) -> dict[str, Any]:
    """``--params``: ``key=value`` pairs separated by commas (not inside brackets), each value
    read as YAML (``3``, ``true``, ``[a, b]``, ``@daily``); ``key:value`` as Kedro's CLI takes it."""
    import yaml

    pairs: dict[str, Any] = {}
    for item in _top_level_split(text):
        separator = "=" if "=" in item else ":"
        key, found, value = item.partition(separator)
        if not found or not key.strip():
            raise ConfigError(f"--params: '{item}' is not key=value")
        try:
            pairs[key.strip()] = yaml.safe_load(value.strip()) if value.strip() else None
        except yaml.YAMLError:  # not YAML (a preset such as @daily): the text itself
            pairs[key.strip()] = value.strip()
    return pairs


def _top_level_split(text: str) -> list[str]:
    items, depth, current = [], 0, ""
    for char in text:
        depth += {"[": 1, "{": 1, "]": -1, "}": -1}.get(char, 0)
        if char == "," and depth == 0:
            items.append(current)
            current = ""
        else:
            current += char
    items.append(current)
    return [item.strip() for item in items if item.strip()]


def _dotted(overrides: Mapping[str, Any], effective: Mapping[str, Any]) -> dict[str, Any]:
    """Overrides with dotted keys (``promotion.metric``) merged into the block's mapping."""
    result: dict[str, Any] = {}
    for key, value in overrides.items():
        head, _, rest = str(key).partition(".")
        if not rest:
            result[head] = value
            continue
        base = result.get(head, effective.get(head))
        merged = dict(base) if isinstance(base, Mapping) else {}
        target = merged
        parts = rest.split(".")
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = value
        result[head] = merged
    return result


def configured_dag_id(
    settings: PipelineSettings, package_name: str, pipeline_name: str
) -> str:
    """The DAG id of a pipeline: airflow.yml's ``dag_id`` or the derived one, plus the suffix."""
    return (settings.dag_id or dag_id_for(package_name, pipeline_name)) + settings.dag_id_suffix
