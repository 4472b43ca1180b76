"""The ``virtualenv`` execution mode: a node task's nodes in another Python environment on this
worker (airflow.yml ``execution: {<tag>: {mode: virtualenv, python: ...}}``)."""

from __future__ import annotations

from typing import Any

from airflow_kedro_mlflow.operators.node import KedroNodeOperator


class KedroNodeVirtualenvOperator(KedroNodeOperator):
    """Runs a node task's nodes with ``python`` (another virtualenv's interpreter, which has
    Kedro, the project's dependencies and this package) through the node runner
    (``python -m airflow_kedro_mlflow.node_runner``), with a node task's semantics: the DAG
    run's save version, intermediate store and MLflow child run; its output in the task log."""

    ui_color = "#fdd49e"

    def __init__(self, *, python: str, **kwargs: Any) -> None:
        super().__init__(python=python, **kwargs)
