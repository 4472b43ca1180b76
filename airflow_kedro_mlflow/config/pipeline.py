"""Reading the Kedro project's ``conf/<env>/airflow.yml`` into ``PipelineSettings`` (its model).

The file follows kedro-airflow's layout and keys: a ``default`` block and one block per pipeline,
the pipeline's block overriding ``default`` key by key. It is read with the project's own config
loader, so env overrides work as elsewhere in Kedro. Every error names the files and the dotted
key, because users fix config by editing a file.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from airflow_kedro_mlflow.config.airflow_yml import ALIASES, KNOWN_KEYS, PipelineSettings, validate_block
from airflow_kedro_mlflow.config.kedro_project import describe_sources, read_config
from airflow_kedro_mlflow.core.errors import ConfigError
from airflow_kedro_mlflow.core.ids import dag_id_for

CONFIG_KEY = "airflow"
CONFIG_PATTERNS = ["airflow*", "airflow/**"]


def settings_from_dict(
    config: Mapping[str, Any],
    pipeline_name: str,
    source: str,
    overrides: Mapping[str, Any] | None = None,
    pipelines: list[str] | None = None,
) -> PipelineSettings:
    """Merge the ``default`` block with ``pipeline_name``'s block, key by key, and validate it.

    Each block is checked on its own first, so an error names the block it is in. ``source``
    names the file(s). ``overrides`` (``--params``) come last, a dotted key setting one key of a
    mapping (``promotion.metric``). With ``pipelines`` (the registered ones, at export) every
    top-level key must be ``default`` or one of them.
    """
    if not isinstance(config, Mapping):
        raise ConfigError(f"{source}: expected a mapping of blocks, got {type(config).__name__}")
    if pipelines is not None:
        _check_blocks(config, pipelines, source)
    merged: dict[str, Any] = {}
    origins: dict[str, str] = {}
    layers = [(source, name, config.get(name) or {}) for name in ("default", pipeline_name)]
    for origin, block_name, block in layers:
        _merge(merged, origins, block, origin, block_name)
    if overrides:
        _merge(merged, origins, _dotted(overrides, merged), "--params", "")
    settings = validate_block(merged, source, "")
    if settings.catchup and settings.start_date is None:
        raise ConfigError(f"{origins['catchup']} is true, which needs 'start_date' (from when to "
                          "catch up)")
    return settings


def _merge(merged: dict[str, Any], origins: dict[str, str], block: Any, origin: str,
           block_name: str) -> None:
    """Check ``block`` on its own, then let its keys replace those of the earlier blocks."""
    if isinstance(block, Mapping) and not block:
        return
    validate_block(block, origin, block_name)
    for key, value in block.items():
        name = ALIASES.get(key, key)
        merged[name] = value
        origins[name] = f"{origin}: key '{block_name}.{key}'" if block_name else f"{origin}: key '{key}'"


def _check_blocks(config: Mapping[str, Any], pipelines: list[str], source: str) -> None:
    """Every top-level key is a block, ``default`` or a registered pipeline's name, and valid
    (not only those of the pipeline being exported)."""
    for key in config:
        if key == "default" or key in pipelines:
            validate_block(config[key] or {}, source, str(key))
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
