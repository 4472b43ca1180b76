"""Start-up work of Kedro that a task process can skip without changing what Kedro does.

``kedro run`` opens a project once; a DAG opens it once per task, each in a fresh process, so
every fixed cost of opening a project is paid per task. What is skipped here is work whose
outcome is known without doing it; what cannot be skipped, a worker can do once for all its
tasks (``airflow_kedro_mlflow.preload``).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

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
