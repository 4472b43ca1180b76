"""Stop a task try that Airflow has given up on before it writes anything more.

An Airflow 3 task runs in a process supervised by its parent (the worker's supervisor), which
heartbeats for it and reports its outcome. When the supervisor dies (its worker killed, OOM), the
task process lives on as an orphan: Airflow declares the try failed after the heartbeat timeout and
starts a retry, while the orphan may still be saving outputs and logging models for the same DAG
run. A try whose supervisor is gone can never succeed, so whatever it writes afterwards can only
race the retry that owns the outputs now. The guard notices by its parent process changing (the
orphan is re-parented), a local check cheap enough to make before every save.
"""

from __future__ import annotations

import os

from airflow_kedro_mlflow.errors import AirflowKedroError


class TryAbandonedError(AirflowKedroError):
    """This try's Airflow supervisor is gone: another try owns the node's outputs."""


class TryGuard:
    def __init__(self, task_label: str) -> None:
        self._label = task_label
        self._supervisor_pid = os.getppid()

    @property
    def abandoned(self) -> bool:
        return os.getppid() != self._supervisor_pid

    def check(self, before: str) -> None:
        """Raise instead of doing ``before`` when the supervisor of this try is gone."""
        if self.abandoned:
            raise TryAbandonedError(
                f"{self._label}: the Airflow supervisor of this try (pid {self._supervisor_pid}) is "
                f"gone, so Airflow will retry the task; stopping before {before}"
            )
