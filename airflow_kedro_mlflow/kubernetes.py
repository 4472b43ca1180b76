"""Public path of ``pod_override``, which exported DAG files that set an ``executor_config``
``pod_override`` call at parse time (``from airflow_kedro_mlflow.kubernetes import
pod_override``): it stays here whatever moves inside the package."""

from airflow_kedro_mlflow.config.pod_spec import pod_override

__all__ = ["pod_override"]
