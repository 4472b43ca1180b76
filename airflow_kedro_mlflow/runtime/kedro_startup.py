"""Start-up work of Kedro that a task process can skip without changing what Kedro does.

``kedro run`` opens a project once; a DAG opens it once per task, each in a fresh process, so
every fixed cost of opening a project is paid per task. What is skipped here is work whose
outcome is known without doing it; what cannot be skipped, a worker can do once for all its
tasks (``airflow_kedro_mlflow.preload``).
"""

from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import Callable, Iterator
from typing import Any

from airflow_kedro_mlflow.compat.dynaconf import import_without_flask, modules_using
from airflow_kedro_mlflow.compat.kedro import wrap_memory_copy_mode

_COPY_MODE_LIBRARIES = frozenset({"pandas", "numpy", "ibis"})
PRELOADED_ENV = "AIRFLOW_KEDRO_MLFLOW_PRELOADED"
"""Set by ``airflow_kedro_mlflow.preload`` in the worker, so its tasks inherit it: what it
preloaded (``kedro``, then the preloaded projects' packages)."""


def infer_copy_mode_without_imports() -> None:
    """Let Kedro's ``MemoryDataset`` choose a copy mode without importing pandas to do it.

    Kedro wraps every parameter in a ``MemoryDataset``, which infers how to copy the value by
    importing pandas, numpy and ibis and asking whether the value is one of their frames or
    arrays. Importing pandas costs a node task that never uses it about 0.4 s. But a value can
    only be an instance of a class whose module is loaded: while none of the three is, Kedro's
    answer is known (``assign`` for any other ``DataFrame`` type, else ``deepcopy``), and once
    one is, Kedro's own function decides as before.
    """
    def without_imports(original: Callable[[Any], str]) -> Callable[[Any], str]:
        @functools.wraps(original)
        def infer_copy_mode(data: Any) -> str:
            if _COPY_MODE_LIBRARIES.isdisjoint(sys.modules):
                return "assign" if type(data).__name__ == "DataFrame" else "deepcopy"
            return original(data)

        return infer_copy_mode

    wrap_memory_copy_mode(without_imports)  # False: another Kedro layout, or in place already


class _FramesWithoutSource:
    """``inspect`` as dynaconf's loaders see it, whose ``stack()`` reads no source lines."""

    def __init__(self, inspect_module: Any):
        self._inspect = inspect_module

    def stack(self, context: int = 0) -> Any:
        return self._inspect.stack(0)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inspect, name)


@contextlib.contextmanager
def settings_loaded_without_reading_source() -> Iterator[None]:
    """Let dynaconf load the project's ``settings.py`` without reading every frame's source.

    Bootstrapping a Kedro project loads its settings through dynaconf, which looks for optional
    ``<env>_settings`` and ``global_settings`` modules; for each it calls ``inspect.stack()``
    twice, only to compare frame file names. ``inspect.stack()`` also reads the source lines of
    every frame on the stack, which in an Airflow task (a deep stack, thousands of loaded
    modules) costs tens of milliseconds per call. With ``context=0`` the frames and file names
    are the same and no source is read. Only dynaconf's loader modules see the change, and only
    meanwhile.
    """
    import inspect

    import_without_flask()  # dynaconf is first imported here, by modules_using
    patched = modules_using(inspect)
    for module in patched:
        setattr(module, "inspect", _FramesWithoutSource(inspect))  # noqa: B010
    try:
        yield
    finally:
        for module in patched:
            setattr(module, "inspect", inspect)  # noqa: B010

