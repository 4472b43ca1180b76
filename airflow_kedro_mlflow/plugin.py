"""Airflow plugin of this provider (entry point ``airflow.plugins``): the parent-run listener.

Airflow loads plugins in each of its processes; the listener acts in the scheduler and the API
server, where DAG run states change (see ``listener.py``). Light module.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from airflow_kedro_mlflow.runtime.listener import ParentRunListener


class KedroMlflowPlugin(AirflowPlugin):
    name = "airflow_kedro_mlflow"
    listeners = [ParentRunListener()]
