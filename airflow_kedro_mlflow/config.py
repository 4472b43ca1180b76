"""Typed settings from the Kedro project's ``conf/<env>/airflow.yml``.

The file follows kedro-airflow's layout: a ``default`` block and one block per pipeline, the
pipeline's block overriding ``default`` key by key. It is read with the project's own config
loader, so ``${oc.env:...}`` and env overrides work as everywhere else in Kedro. Every error names
the files the key came from and the dotted key, because users fix config by editing a file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from airflow_kedro_mlflow.errors import ConfigError

CONFIG_KEY = "airflow"
CONFIG_PATTERNS = ["airflow*", "airflow/**"]
DEFAULT_INTERMEDIATE_STORE = "data/airflow_intermediate"


@dataclass(frozen=True)
class PipelineSettings:
    """What the DAG of one pipeline is configured with."""

    intermediate_store: str = DEFAULT_INTERMEDIATE_STORE
    """Where data crossing task boundaries is kept during a DAG run: a local directory (relative
    paths are relative to the project root) or an fsspec URL."""
    dag_id: str | None = None
    """Overrides the DAG id derived from the package and pipeline names."""

    @classmethod
    def known_keys(cls) -> set[str]:
        return {f.name for f in fields(cls)}


def settings_from_dict(
    config: Mapping[str, Any], pipeline_name: str, source: str
) -> PipelineSettings:
    """Merge the ``default`` block with ``pipeline_name``'s block and validate the result.

    ``source`` names the file(s) in error messages.
    """
    if not isinstance(config, Mapping):
        raise ConfigError(f"{source}: expected a mapping of blocks, got {type(config).__name__}")
    merged: dict[str, Any] = {}
    for block_name in ("default", pipeline_name):
        block = config.get(block_name) or {}
        if not isinstance(block, Mapping):
            raise ConfigError(
                f"{source}: key '{block_name}' must be a mapping, got {type(block).__name__}"
            )
        for key, value in block.items():
            if key not in PipelineSettings.known_keys():
                known = ", ".join(sorted(PipelineSettings.known_keys()))
                raise ConfigError(
                    f"{source}: unknown key '{block_name}.{key}' (known keys: {known})"
                )
            if value is not None and not isinstance(value, str):
                raise ConfigError(
                    f"{source}: key '{block_name}.{key}' must be a string, "
                    f"got {type(value).__name__}"
                )
            merged[key] = value
    return PipelineSettings(**{k: v for k, v in merged.items() if v is not None})


def load_pipeline_settings(
    config_loader: Any, conf_source: str | Path, env: str | None, pipeline_name: str
) -> PipelineSettings:
    """Read ``airflow.yml`` through a Kedro config loader; defaults when the project has none."""
    from airflow_kedro_mlflow.kedro_project import describe_sources, read_config

    source = describe_sources(conf_source, env, CONFIG_KEY)
    config = read_config(config_loader, CONFIG_KEY, CONFIG_PATTERNS, source)
    return settings_from_dict(config or {}, pipeline_name, source)
