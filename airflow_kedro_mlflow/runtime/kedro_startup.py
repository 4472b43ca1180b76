"""Start-up work of Kedro that a task process can skip without changing what Kedro does.

``kedro run`` opens a project once; a DAG opens it once per task, each in a fresh process, so
every fixed cost of opening a project is paid per task. What is skipped here is work whose
outcome is known without doing it.
"""

from __future__ import annotations

import functools
import sys
from typing import Any

_COPY_MODE_LIBRARIES = frozenset({"pandas", "numpy", "ibis"})


def infer_copy_mode_without_imports() -> None:
    """Let Kedro's ``MemoryDataset`` choose a copy mode without importing pandas to do it.

    Kedro wraps every parameter in a ``MemoryDataset``, which infers how to copy the value by
    importing pandas, numpy and ibis and asking whether the value is one of their frames or
    arrays. Importing pandas costs a node task that never uses it about 0.4 s. But a value can
    only be an instance of a class whose module is loaded: while none of the three is, Kedro's
    answer is known (``assign`` for any other ``DataFrame`` type, else ``deepcopy``), and once
    one is, Kedro's own function decides as before.
    """
    from kedro.io import memory_dataset

    original = getattr(memory_dataset, "_infer_copy_mode", None)
    if original is None or hasattr(original, "__wrapped__"):
        return  # another Kedro layout, or already in place

    @functools.wraps(original)
    def infer_copy_mode(data: Any) -> str:
        if _COPY_MODE_LIBRARIES.isdisjoint(sys.modules):
            return "assign" if type(data).__name__ == "DataFrame" else "deepcopy"
        return original(data)

    memory_dataset._infer_copy_mode = infer_copy_mode
