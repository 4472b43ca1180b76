"""Airflow provider registration (entry point ``apache_airflow_provider``)."""

from __future__ import annotations

from airflow_kedro_mlflow import __version__


def get_provider_info() -> dict:
    return {
        "package-name": "airflow-kedro-mlflow",
        "name": "Kedro + MLflow",
        "description": "Run Kedro pipelines as Airflow DAGs, one task per node, tracked as one MLflow run.",
        "versions": [__version__],
        "extra-links": ["airflow_kedro_mlflow.operators.links.MlflowRunLink"],
        "config": {
            "kedro_mlflow": {
                "description": "Settings of the workers that run the tasks of exported Kedro DAGs.",
                "options": {
                    "preload_projects": {
                        "description": (
                            "Kedro project roots, comma-separated, whose dependencies "
                            "airflow_kedro_mlflow.preload imports once per worker (what their "
                            "nodes and catalogs import; never the projects' own code)."
                        ),
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "/opt/airflow/projects/wine_classifier",
                        "default": "",
                    },
                },
            },
        },
    }
