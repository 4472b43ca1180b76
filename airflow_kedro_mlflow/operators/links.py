"""The "MLflow run" button on every task of an exported DAG.

Airflow 3 computes extra links on the worker right after ``execute`` and stores them in XCom; the
API server only reads them back. So each task pushes its run's UI URL to XCom under
``RUN_URL_XCOM_KEY`` and the link returns that value. Light module: parse-time safe.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperatorLink

RUN_URL_XCOM_KEY = "mlflow_run_url"


class MlflowRunLink(BaseOperatorLink):
    """Opens the MLflow run of a task: the node's child run, or the DAG run's parent run."""

    name = "MLflow run"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        from airflow.sdk.execution_time.xcom import XCom

        return XCom.get_value(ti_key=ti_key, key=RUN_URL_XCOM_KEY) or ""
