"""Operators of exported DAGs: a start task, one task per Kedro node, and an end task.

Imported by DAG files at parse time, so only ``airflow.sdk`` and light modules of this package are
imported here; Kedro, fsspec and the project are imported inside ``execute``.

The start task is a setup task and the end task its teardown: Airflow runs the end task whatever
the nodes' outcome, ignores it when computing the DAG run's state (a failed node fails the run), and
clears both along with any node task a user clears, so a rerun finishes the same DAG run properly.
"""

from __future__ import annotations

from airflow_kedro_mlflow.config.project_ref import KedroProject
from airflow_kedro_mlflow.operators.base import EXPERIMENT_XCOM_KEY, PARENT_XCOM_KEY, run_params
from airflow_kedro_mlflow.operators.kubernetes import KedroNodePodOperator
from airflow_kedro_mlflow.operators.node import KedroNodeOperator
from airflow_kedro_mlflow.operators.run import (
    KedroPromoteModelOperator,
    KedroRunEndOperator,
    KedroRunStartOperator,
)
from airflow_kedro_mlflow.operators.virtualenv import KedroNodeVirtualenvOperator

__all__ = [
    "EXPERIMENT_XCOM_KEY",
    "PARENT_XCOM_KEY",
    "KedroNodeOperator",
    "KedroNodePodOperator",
    "KedroNodeVirtualenvOperator",
    "KedroProject",
    "KedroPromoteModelOperator",
    "KedroRunEndOperator",
    "KedroRunStartOperator",
    "run_params",
]
