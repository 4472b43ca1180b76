"""Make a run MLflow's active run in this process, without importing MLflow to do it.

While a node runs, the DAG run's parent is MLflow's *active* run, so whatever the node logs
through MLflow's fluent API (``mlflow.log_metric``, a dataset that logs a model) lands on it. A
node that never touches MLflow should not pay for importing it, so the run is pushed onto MLflow's
stack of active runs when ``mlflow.tracking.fluent`` is imported: at once if it already is, else
right after something imports it (an import hook on that one module). No request is made and no
status is written: MLflow's own resume (``start_run(run_id=...)``) writes RUNNING and its
``end_run`` a final status, which only the start and end tasks may set.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import os
import sys
import time
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

from airflow_kedro_mlflow.compat.mlflow import active_runs

FLUENT = "mlflow.tracking.fluent"


@contextlib.contextmanager
def activated(run: Any) -> Iterator[None]:
    """``run`` (an ``mlflow.entities.Run`` or a run of ``mlflow_rest``) active meanwhile."""
    _clear(sys.modules.get(FLUENT))  # runs left active by an earlier task in-process stay as they are
    hook = _AfterImport(FLUENT, lambda fluent: _push(fluent, run))
    if FLUENT in sys.modules:
        _push(sys.modules[FLUENT], run)
    else:
        sys.meta_path.insert(0, hook)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(hook)
        _clear(sys.modules.get(FLUENT))


def _push(fluent: ModuleType, run: Any) -> None:
    active_runs(fluent).append(fluent.ActiveRun(_as_mlflow_run(run)))


def _clear(fluent: ModuleType | None) -> None:
    """No active run any more, and no status written: what ``end_run`` does, minus the request."""
    if fluent is not None:
        active_runs(fluent).clear()
    os.environ.pop("MLFLOW_RUN_ID", None)


def _as_mlflow_run(run: Any) -> Any:
    from mlflow.entities import Run, RunData, RunInfo, RunTag

    if isinstance(run, Run):
        return run
    info = run.info
    return Run(
        RunInfo(
            run_id=info.run_id,
            experiment_id=info.experiment_id,
            user_id=info.user_id,
            status=info.status,
            start_time=info.start_time or int(time.time() * 1000),  # MLflow requires one
            end_time=info.end_time,
            lifecycle_stage=info.lifecycle_stage,
            artifact_uri=info.artifact_uri,
            run_name=info.run_name,
        ),
        RunData(tags=[RunTag(k, v) for k, v in run.data.tags.items()]),
    )


class _AfterImport(importlib.abc.MetaPathFinder):
    """Calls ``callback(module)`` once the module ``name`` has been imported (and executed)."""

    def __init__(self, name: str, callback: Callable[[ModuleType], None]):
        self._name = name
        self._callback = callback

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != self._name:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None and spec.loader is not None:
                spec.loader = _ThenCall(spec.loader, self._callback)
                return spec
        return None


class _ThenCall(importlib.abc.Loader):
    def __init__(self, loader: Any, callback: Callable[[ModuleType], None]):
        self._loader = loader
        self._callback = callback

    def create_module(self, spec: Any) -> Any:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        self._callback(module)

    def __getattr__(self, name: str) -> Any:  # get_data, is_package...: the real loader's
        return getattr(self._loader, name)
