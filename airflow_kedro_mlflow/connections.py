"""Public path of the ``${airflow_conn:...}`` resolver, for a project's ``settings.py`` (``from
airflow_kedro_mlflow.connections import airflow_conn``) when it runs outside Airflow."""

from airflow_kedro_mlflow.config.connections import airflow_conn

__all__ = ["airflow_conn"]
