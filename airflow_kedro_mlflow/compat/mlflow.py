"""MLflow internals: making a run active without a request.

Checked against MLflow 3.17.2 (``compat.CHECKED``). ``mlflow.start_run(run_id=...)`` makes a run
active by asking the server for it (and sets it RUNNING); a node task already has the run it
opened through the REST API, so it pushes it onto the fluent API's stack of active runs
(``mlflow.tracking.fluent._active_run_stack``, a ``ThreadLocalVariable`` of a list).
"""

from __future__ import annotations

from types import ModuleType
from typing import Any


def active_runs(fluent: ModuleType) -> list[Any]:
    """The fluent API's stack of active runs (the list itself: append and clear it)."""
    return fluent._active_run_stack.get()
