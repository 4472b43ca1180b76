"""Pods as ``airflow.yml`` holds them (Kubernetes' own YAML keys) turned into the Kubernetes
client's models, with every key checked: what the DAG file needs at parse time (an
``executor_config`` ``pod_override`` must be a ``V1Pod`` when Airflow serializes the DAG) and
what the pod mode gives its ``KubernetesPodOperator``. Needs the ``kubernetes`` extra.
"""

from __future__ import annotations

from typing import Any

from airflow_kedro_mlflow.compat.kubernetes import deserialize
from airflow_kedro_mlflow.core.errors import ConfigError


def pod_override(spec: dict[str, Any]) -> Any:
    """``spec`` (a pod as YAML data: ``{spec: {containers: [{name: base, ...}]}}``) as a
    ``V1Pod``; a key the Kubernetes API does not know is an error, not silently dropped."""
    return to_model(spec, "V1Pod", "executor_config.pod_override")


def to_model(data: dict[str, Any], kind: str, where: str) -> Any:
    model, kept = deserialize(data, kind)
    dropped = _dropped_key(data, kept)
    if dropped:
        raise ConfigError(f"sets {where}.{dropped}, which is not a field of a Kubernetes {kind[2:]}")
    return model


def _dropped_key(given: Any, kept: Any, path: str = "") -> str | None:
    if isinstance(given, dict):
        kept = kept if isinstance(kept, dict) else {}
        for key, value in given.items():
            where = f"{path}.{key}" if path else str(key)
            if key not in kept and value is not None:
                return where
            found = _dropped_key(value, kept.get(key), where)
            if found:
                return found
    elif isinstance(given, list) and isinstance(kept, list):
        for index, (value, other) in enumerate(zip(given, kept, strict=False)):
            found = _dropped_key(value, other, f"{path}[{index}]")
            if found:
                return found
    return None
