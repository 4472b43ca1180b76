"""Airflow identifiers derived from Kedro names.

Airflow task, group and DAG ids allow letters, digits, ``_``, ``-`` and ``.``; the dot is reserved
for TaskGroup nesting, so every part of an id is sanitised to ``[A-Za-z0-9_-]``. The mapping is a
pure function of the Kedro name, so ids are stable across exports; collisions are detected by the
compiler, which knows both Kedro names and can name them in the error.
"""

from __future__ import annotations

import hashlib
import re

_INVALID = re.compile(r"[^A-Za-z0-9_-]+")
START_TASK_ID = "kedro_run_start"
END_TASK_ID = "kedro_run_end"
PROMOTE_TASK_ID = "kedro_promote_model"

# Airflow's limit for a whole id (including TaskGroup prefixes) is 250 characters.
MAX_ID_LENGTH = 250


def sanitize_id_part(name: str) -> str:
    """Turn one Kedro name segment into a valid Airflow id segment (without dots)."""
    part = _INVALID.sub("_", name).strip("_")
    return part or "_"


def dag_id_for(package_name: str, pipeline_name: str) -> str:
    """The DAG id of a pipeline: the package name, suffixed by the pipeline unless it is the default."""
    if pipeline_name == "__default__":
        return sanitize_id_part(package_name)
    return f"{sanitize_id_part(package_name)}__{sanitize_id_part(pipeline_name)}"


def short_hash(text: str, length: int = 8) -> str:
    """A short, stable digest used to keep sanitised names distinct."""
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def storage_key(name: str) -> str:
    """A path segment for ``name`` that is safe on local disks and object stores, and injective.

    Sanitising alone could map two names to one key (``a:b`` and ``a_b``), so a digest of the
    original name is appended whenever sanitising changed it.
    """
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", name)
    return cleaned if cleaned == name else f"{cleaned}-{short_hash(name)}"


def champion_asset_uri(registered_model: str, alias: str) -> str:
    """The Airflow Asset of a registered model's alias: MLflow's own URI for it."""
    return f"models:/{registered_model}@{alias}"
