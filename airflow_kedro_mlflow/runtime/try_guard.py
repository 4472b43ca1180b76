"""Stop a task try that Airflow has given up on before it writes anything more.

An Airflow 3 task runs in a process supervised by its parent (the worker's supervisor), which
heartbeats for it and reports its outcome. When the supervisor dies (its worker killed, OOM), the
task process lives on as an orphan: Airflow declares the try failed after the heartbeat timeout and
starts a retry, while the orphan may still be saving outputs and logging models for the same DAG
run. A try whose supervisor is gone can never succeed, so whatever it writes afterwards can only
race the retry that owns the outputs now. The guard notices by its parent process changing (the
orphan is re-parented), a local check cheap enough to make before every save. The same holds for
a try that Airflow told to stop (SIGTERM), which otherwise runs on until it is SIGKILLed.
"""

from __future__ import annotations

import os

from airflow_kedro_mlflow.core.errors import AirflowKedroError


class TryAbandonedError(AirflowKedroError):
    """This try's Airflow supervisor is gone: another try owns the node's outputs."""


_stop_requested: str | None = None


def request_stop(reason: str) -> None:
    """Airflow asked this task process to stop (SIGTERM: the try was marked failed, cleared or
    timed out). Airflow's handler only calls the operator's ``on_kill``; the node goes on until
    the supervisor's SIGKILL seconds later, so the guard makes it stop at its next check."""
    global _stop_requested
    _stop_requested = reason


class TryGuard:
    def __init__(self, task_label: str) -> None:
        global _stop_requested
        _stop_requested = None  # a new try in this process
        self._label = task_label
        self._supervisor_pid = os.getppid()

    @property
    def abandoned(self) -> bool:
        return _stop_requested is not None or os.getppid() != self._supervisor_pid

    def check(self, before: str) -> None:
        """Raise instead of doing ``before`` when Airflow has given up on this try."""
        if _stop_requested is not None:
            raise TryAbandonedError(f"{self._label}: {_stop_requested}; stopping before {before}")
        if os.getppid() != self._supervisor_pid:
            raise TryAbandonedError(
                f"{self._label}: the Airflow supervisor of this try (pid {self._supervisor_pid}) is "
                f"gone, so Airflow will retry the task; stopping before {before}"
            )
