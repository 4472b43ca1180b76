"""Celery settings for Airflow workers whose tasks run exported DAGs: Airflow's, plus a preload.

    AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS=airflow_kedro_mlflow.celery_config.CELERY_CONFIG

on the workers adds ``airflow_kedro_mlflow.preload`` to Celery's ``imports``, which a worker
imports when it starts: every task it runs then finds Kedro and the preloaded projects'
dependencies imported (see ``airflow_kedro_mlflow.preload``). Everything else is Airflow's
default Celery configuration, read from the same ``[celery]`` settings.
"""

from __future__ import annotations

from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG

CELERY_CONFIG = {
    **DEFAULT_CELERY_CONFIG,
    "imports": (*DEFAULT_CELERY_CONFIG.get("imports", ()), "airflow_kedro_mlflow.preload"),
}
