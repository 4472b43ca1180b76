"""The check every removal of intermediate data makes before it deletes anything.

Intermediate data is removed recursively: a DAG run's folder when the run succeeded, old run
folders by ``kedro airflow clean-intermediate``. A wrong path there removes other runs' data: the
DAG's folder had a run id of ``.`` been used as the key, the whole DAG's folder had a store listing
returned an empty name (``<dag>//`` on an object store). ``ids.storage_key`` cannot produce such
paths; this check makes sure of it wherever a path came from. Paths are compared as text, segment
by segment, as object stores resolve neither ``.`` nor ``..`` while local disks do: a segment that
is empty, ``.`` or ``..`` is refused rather than interpreted.
"""

from __future__ import annotations

from airflow_kedro_mlflow.core.errors import UnsafeRemovalError

_UNSAFE_SEGMENTS = ("", ".", "..")


def is_strictly_below(path: str, folder: str) -> bool:
    """Whether ``path`` names something inside ``folder``, not ``folder`` itself nor outside it."""
    base = folder.rstrip("/")
    # The folder itself is configuration (it may be ``<project>/../shared``): only what the path
    # adds to it is judged, and a plain segment below any folder stays below it once resolved.
    if not base or not path.startswith(base + "/"):
        return False
    segments = path[len(base) + 1 :].removesuffix("/").split("/")
    return not any(segment in _UNSAFE_SEGMENTS for segment in segments)


def check_strictly_below(path: str, folder: str, protocol: str = "", what: str = "") -> None:
    """Refuse, before anything is removed, to remove ``path`` unless it is strictly in ``folder``.

    ``protocol`` (``s3://``) makes the message name the paths as the user configured them;
    ``what`` says which folder ``folder`` is (``the DAG's folder``).
    """
    if not is_strictly_below(path, folder):
        where = f"{what} " if what else ""
        raise UnsafeRemovalError(
            f"refusing to remove {protocol}{path}: it is not strictly inside {where}"
            f"{protocol}{folder.rstrip('/')}; nothing was removed"
        )
