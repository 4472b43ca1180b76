"""Typed settings from the Kedro project's ``conf/<env>/airflow.yml``.

The file follows kedro-airflow's layout and keys: a ``default`` block and one block per pipeline,
the pipeline's block overriding ``default`` key by key. It is read with the project's own config
loader, so env overrides work as elsewhere in Kedro. Every error names the files and the dotted
key, because users fix config by editing a file.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from airflow_kedro_mlflow.errors import ConfigError
from airflow_kedro_mlflow.kedro_project import describe_sources, read_config

CONFIG_KEY = "airflow"
CONFIG_PATTERNS = ["airflow*", "airflow/**"]
DEFAULT_INTERMEDIATE_STORE = "data/airflow_intermediate"
SCHEDULE_PRESETS = {
    "@once", "@continuous", "@hourly", "@daily", "@weekly", "@monthly", "@quarterly", "@yearly",
    "@annually", "@midnight",
}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d)?\s*$")
_UNIT_SECONDS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}


PROMOTION_DIRECTIONS = ("maximize", "minimize")


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
class PipelineSettings:
    """What the DAG of one pipeline is configured with."""

    intermediate_store: str = DEFAULT_INTERMEDIATE_STORE
    """Where data crossing task boundaries is kept during a DAG run: a local directory (relative
    paths are relative to the project root) or an fsspec URL."""
    intermediate_store_credentials: str | None = None
    """An entry of credentials.yml with the store's fsspec options (s3fs: key, secret,
    client_kwargs.endpoint_url...), the same shape as a Kedro dataset's credentials."""
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
    group_by: str | None = None
    """``memory``: nodes joined by in-memory data run in one task; ``namespace``: the nodes of a
    top-level namespace run in one task (kedro-airflow's ``--group-by``); ``None``: a task per node."""

    def dag_arguments(self) -> dict[str, Any]:
        """Keyword arguments of ``DAG(...)`` that differ from Airflow's defaults."""
        schedule: Any = self.schedule_assets or self.schedule
        args: dict[str, Any] = {"schedule": schedule, "catchup": self.catchup}
        if self.start_date is not None:
            args["start_date"] = self.start_date
        if self.max_active_runs is not None:
            args["max_active_runs"] = self.max_active_runs
        return args

    def node_task_arguments(self, node_tags: tuple[str, ...]) -> dict[str, str]:
        """``pool``/``queue`` of a node's task, from the first configured tag the node has."""
        args: dict[str, str] = {}
        for argument, routes in (("pool", self.pools), ("queue", self.queues)):
            for tag, target in routes:
                if tag in node_tags:
                    args[argument] = target
                    break
        return args

    def default_args(self) -> dict[str, Any]:
        """``default_args`` of the DAG's tasks."""
        args: dict[str, Any] = {}
        if self.owner is not None:
            args["owner"] = self.owner
        if self.retries is not None:
            args["retries"] = self.retries
        if self.retry_delay_seconds is not None:
            args["retry_delay_seconds"] = self.retry_delay_seconds
        return args


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"must be a string, got {type(value).__name__}")
    return value


def _schedule(value: Any, where: str) -> str | tuple[str, ...] | None:
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


def _start_date(value: Any, where: str) -> datetime:
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


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"must be true or false, got {value!r}")
    return value


def _count(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"must be a whole number >= 0, got {value!r}")
    return value


def _minutes_or_duration(value: Any, where: str) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return float(value) * 60
    if isinstance(value, str) and (match := _DURATION.match(value)):
        number, unit = match.groups()
        return float(number) * _UNIT_SECONDS[unit or "m"]
    raise ValueError(f"must be minutes (a number) or a duration such as '30s', '5m', '1h'; got {value!r}")


def _tags(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError("must be a list of strings")
    return tuple(value)


_PROMOTION_KEYS = {f.name for f in fields(PromotionSettings)}
_PROMOTION_REQUIRED = ("registered_model", "model", "metric")


def _promotion(value: Any, where: str) -> PromotionSettings | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValueError(f"must be a mapping with keys {', '.join(sorted(_PROMOTION_KEYS))}, or null")
    unknown = sorted(set(value) - _PROMOTION_KEYS)
    if unknown:
        raise ValueError(
            f"has unknown key '{where}.{unknown[0]}' (known: {', '.join(sorted(_PROMOTION_KEYS))})"
        )
    missing = [key for key in _PROMOTION_REQUIRED if not value.get(key)]
    if missing:
        raise ValueError(f"lacks '{where}.{missing[0]}'")
    for key, item in value.items():
        if not isinstance(item, str) or not item:
            raise ValueError(f"has '{where}.{key}' that is not a non-empty string: {item!r}")
    if value.get("direction", "maximize") not in PROMOTION_DIRECTIONS:
        raise ValueError(
            f"has '{where}.direction' {value['direction']!r}; use one of {', '.join(PROMOTION_DIRECTIONS)}"
        )
    return PromotionSettings(**value)


GROUP_BY_CHOICES = ("memory", "namespace")


def _group_by(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if value not in GROUP_BY_CHOICES:
        raise ValueError(f"must be one of {', '.join(GROUP_BY_CHOICES)} (or null), got {value!r}")
    return str(value)


def _tag_routes(value: Any, where: str) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) and v for k, v in value.items()
    ):
        raise ValueError("must map Kedro node tags to names, e.g. {gpu: gpu_pool}")
    return tuple(value.items())


# key in airflow.yml -> (field of PipelineSettings, parser)
_KEYS: dict[str, tuple[str, Callable[[Any, str], Any]]] = {
    "intermediate_store": ("intermediate_store", _string),
    "intermediate_store_credentials": ("intermediate_store_credentials", _string),
    "dag_id": ("dag_id", _string),
    "dag_id_suffix": ("dag_id_suffix", _string),
    "schedule": ("schedule", _schedule),
    "schedule_interval": ("schedule", _schedule),  # kedro-airflow's (Airflow 2) name
    "start_date": ("start_date", _start_date),
    "catchup": ("catchup", _bool),
    "max_active_runs": ("max_active_runs", _count),
    "owner": ("owner", _string),
    "retries": ("retries", _count),
    "retry_delay": ("retry_delay_seconds", _minutes_or_duration),
    "tags": ("tags", _tags),
    "promotion": ("promotion", _promotion),
    "pools": ("pools", _tag_routes),
    "queues": ("queues", _tag_routes),
    "group_by": ("group_by", _group_by),
}
# kedro-airflow keys that Airflow 3 dropped or that default to what they ask for: accepted, unused.
_IGNORED_KEYS = {"depends_on_past", "email_on_failure", "email_on_retry"}
assert {f for f, _ in _KEYS.values()} | {"schedule_assets"} == {
    f.name for f in fields(PipelineSettings)
}


def settings_from_dict(
    config: Mapping[str, Any],
    pipeline_name: str,
    source: str,
    overrides: Mapping[str, Any] | None = None,
) -> PipelineSettings:
    """Merge the ``default`` block with ``pipeline_name``'s block and validate the result.

    ``source`` names the file(s) in error messages. ``overrides`` (``--params``) come last, a
    dotted key setting one key of a mapping (``promotion.metric``).
    """
    if not isinstance(config, Mapping):
        raise ConfigError(f"{source}: expected a mapping of blocks, got {type(config).__name__}")
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
    for origin, block_name, block in layers:
        if not isinstance(block, Mapping):
            raise ConfigError(
                f"{origin}: key '{block_name}' must be a mapping, got {type(block).__name__}"
            )
        for key, value in block.items():
            where = f"{block_name}.{key}" if block_name else str(key)
            if key in _IGNORED_KEYS:
                continue
            if key not in _KEYS:
                known = ", ".join(sorted(_KEYS))
                raise ConfigError(f"{origin}: unknown key '{where}' (known keys: {known})")
            field_name, parse = _KEYS[key]
            origins[field_name] = f"{origin}: key '{where}'"
            try:
                parsed = parse(value, where)
            except ValueError as exc:
                raise ConfigError(f"{origin}: key '{where}' {exc}") from None
            if field_name == "schedule":  # a schedule is either a timetable or assets, not both
                values["schedule"], values["schedule_assets"] = (
                    (None, parsed) if isinstance(parsed, tuple) else (parsed, ())
                )
            else:
                values[field_name] = parsed
    if values.get("catchup") and values.get("start_date") is None:
        raise ConfigError(f"{origins['catchup']} is true, which needs 'start_date' (from when to "
                          "catch up)")
    return PipelineSettings(**values)


def load_pipeline_settings(
    config_loader: Any,
    conf_source: str | Path,
    env: str | None,
    pipeline_name: str,
    overrides: Mapping[str, Any] | None = None,
) -> PipelineSettings:
    """Read ``airflow.yml`` through a Kedro config loader; defaults when the project has none."""
    source = describe_sources(conf_source, env, CONFIG_KEY)
    config = read_config(config_loader, CONFIG_KEY, CONFIG_PATTERNS, source)
    return settings_from_dict(config or {}, pipeline_name, source, overrides)


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
