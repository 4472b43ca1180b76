"""Airflow internals: running an operator from inside another operator's ``execute``.

Checked against Airflow 3.3.2 (Task SDK 1.3.2, ``compat.CHECKED``). Airflow refuses an operator's
``execute`` called outside its task runner unless ``ExecutorSafeguard.tracker`` names it; the
pod mode runs a ``KubernetesPodOperator`` inside the node task, so it says so for its call.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def executing_inside_task(operator: Any) -> Iterator[None]:
    """Let ``operator.execute`` be called meanwhile, as Airflow's task runner would."""
    from airflow.sdk.bases.operator import ExecutorSafeguard

    token = ExecutorSafeguard.tracker.set(operator)
    try:
        yield
    finally:
        ExecutorSafeguard.tracker.reset(token)
