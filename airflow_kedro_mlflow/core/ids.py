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


# A name kept as its own key: characters every filesystem and object store takes, not starting
# with a dot (``.``, ``..`` and hidden names).
_KEPT_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")
# What an escaped key ends with; a name that ends so is escaped too, so it cannot pose as one.
_ESCAPED_SUFFIX = re.compile(r"-[0-9a-f]{8}")


def storage_key(name: str) -> str:
    """A path segment for ``name`` that is safe on local disks and object stores, and injective.

    The key is one segment strictly below its parent folder: never empty, ``.`` or ``..``, no
    ``/``, no leading dot. Airflow does not guarantee that of run ids. In Airflow 3.3 a triggered
    ``dag_run_id`` must match ``[scheduler] allowed_run_id_pattern``, by default
    ``^[A-Za-z0-9_.~:+-]+$``: no ``/``, but ``.`` and ``.hidden`` pass; ``..`` anywhere is refused
    unless ``[core] allow_double_dot_in_ids`` is set; and a deployment may widen the pattern to
    let ``/`` through. As a key, ``.`` or ``..`` would make a run's intermediate-data folder its
    DAG's folder, or the one above, and that run's clean-up would remove every other run's data.

    Names of ``[A-Za-z0-9._-]`` that start with no dot are their own key, so keys of existing data
    never change. Any other name is escaped: its readable part (other characters as ``_``, leading
    dots as one ``_``) followed by ``-`` and a digest of the whole name, so that ``a:b`` and
    ``a_b`` stay apart. A name that already ends like an escaped key (``-`` and 8 hex digits) is
    escaped too: otherwise a run id could be chosen to equal another run's key and share its
    folder. Escaped and kept keys are thus disjoint; two escaped names share a key only if their
    readable parts and 32-bit digests both match.
    """
    if _KEPT_NAME.fullmatch(name) and not _ESCAPED_SUFFIX.search(name):
        return name
    readable = re.sub(r"^\.+", "_", re.sub(r"[^A-Za-z0-9._-]+", "_", name)) or "_"
    return f"{readable}-{short_hash(name)}"


def champion_asset_uri(registered_model: str, alias: str) -> str:
    """The Airflow Asset of a registered model's alias: MLflow's own URI for it."""
    return f"models:/{registered_model}@{alias}"
