"""Run Kedro pipelines as Airflow DAGs, one task per node, tracked as one MLflow run.

This module is imported by every exported DAG file at parse time, so it must stay light:
no Kedro, MLflow, pandas or boto3 here or in anything it imports.
"""

__version__ = "0.1.0"
