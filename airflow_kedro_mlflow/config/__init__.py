"""A Kedro project's configuration as this package reads it: ``airflow.yml``, ``mlflow.yml``,
the conf source and envs, credentials, Connections, a run's conf, pods as data.
"""
