"""Airflow provider registration (entry point ``apache_airflow_provider``)."""

from __future__ import annotations

from airflow_kedro_mlflow import __version__


def get_provider_info() -> dict:
    return {
        "package-name": "airflow-kedro-mlflow",
        "name": "Kedro + MLflow",
        "description": "Run Kedro pipelines as Airflow DAGs, one task per node, tracked as one MLflow run.",
        "versions": [__version__],
        "extra-links": ["airflow_kedro_mlflow.links.MlflowRunLink"],
    }
