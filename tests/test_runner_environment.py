"""Fast tests of what a process this package starts inherits: the Connections the tasks' config
names and an environment without Airflow's own secrets."""

from __future__ import annotations

from airflow_kedro_mlflow.core.environment import without_airflow_secrets
from airflow_kedro_mlflow.runtime.launch import referenced_connections


def test_only_the_tasks_env_names_connections_and_comments_name_none(tmp_path):
    conf = tmp_path / "conf"
    for folder, text in {
        "base/catalog.yml": "raw:\n  credentials: ${airflow_conn:base_conn}\n"
                            "# old: ${airflow_conn:commented_out}\n",
        "prod/credentials.yml": "s3: ${airflow_conn:prod_conn,login}\n",
        "staging/credentials.yml": "s3: ${airflow_conn:staging_conn}\n",
        "local/credentials.yml": "api:\n  token: ${airflow_conn:local_conn,password}\n",
    }.items():
        (conf / folder).parent.mkdir(parents=True, exist_ok=True)
        (conf / folder).write_text(text)
    assert referenced_connections(tmp_path, None, "prod") == ["base_conn", "prod_conn"]
    assert referenced_connections(tmp_path, None, None) == ["base_conn", "local_conn"]


def test_airflow_secrets_and_other_connections_stay_behind():
    environ = {
        "PATH": "/usr/bin", "WINE_S3_KEY": "project-key", "AIRFLOW_HOME": "/opt/airflow",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql://u:p@db/airflow",
        "AIRFLOW__CORE__FERNET_KEY": "f", "AIRFLOW__API_AUTH__JWT_SECRET": "j",
        "AIRFLOW__CELERY__BROKER_URL": "redis://:p@redis", "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW_CONN_WANTED": "{}", "AIRFLOW_CONN_OTHER": "{}",
    }
    kept = {"PATH", "WINE_S3_KEY", "AIRFLOW_HOME", "AIRFLOW__CORE__PARALLELISM"}
    assert set(without_airflow_secrets(environ, connections=["wanted"])) == kept | {
        "AIRFLOW_CONN_WANTED"}
    assert set(without_airflow_secrets(environ)) == kept | {"AIRFLOW_CONN_WANTED",
                                                            "AIRFLOW_CONN_OTHER"}
