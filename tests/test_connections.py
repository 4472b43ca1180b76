"""``${airflow_conn:...}``: Airflow Connections as Kedro credentials, field by field."""

from __future__ import annotations

import json

import pytest

from airflow_kedro_mlflow.config.connections import airflow_conn, register
from airflow_kedro_mlflow.core.errors import ConfigError


@pytest.fixture
def connections(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_STORE", json.dumps({
        "conn_type": "aws", "login": "AKID", "password": "s3cret-value",
        "extra": {"endpoint_url": "http://127.0.0.1:9000", "region_name": "eu-west-1",
                  "aws_session_token": "sess-token"}}))
    monkeypatch.setenv("AIRFLOW_CONN_TRACKING", "http://bot:t0ken-value@mlflow.internal:5000")


def test_aws_connection_is_s3fs_options_and_fields_are_its_attributes(connections):
    assert airflow_conn("store") == {
        "key": "AKID", "secret": "s3cret-value", "token": "sess-token",
        "client_kwargs": {"endpoint_url": "http://127.0.0.1:9000", "region_name": "eu-west-1"}}
    assert airflow_conn("store", "extra.region_name") == "eu-west-1"
    assert airflow_conn("tracking", "url") == "http://mlflow.internal:5000"
    assert airflow_conn("tracking", "password") == "t0ken-value"
    assert airflow_conn("tracking", "login") == "bot"


def test_errors_name_the_connection_and_what_to_do(connections):
    with pytest.raises(ConfigError, match="no Connection 'nope'.*AIRFLOW_CONN_NOPE"):
        airflow_conn("nope")
    with pytest.raises(ConfigError, match="of type 'http'; name a field"):
        airflow_conn("tracking")
    with pytest.raises(ConfigError, match="unknown field 'passwd'"):
        airflow_conn("tracking", "passwd")


def test_kedro_resolves_it_in_credentials(connections, tmp_path):
    from kedro.config import OmegaConfigLoader

    register()
    (tmp_path / "base").mkdir()
    (tmp_path / "local").mkdir()
    (tmp_path / "base" / "credentials.yml").write_text(
        "s3: ${airflow_conn:store}\nmlflow:\n  MLFLOW_TRACKING_TOKEN: ${airflow_conn:tracking,password}\n")
    credentials = OmegaConfigLoader(str(tmp_path))["credentials"]
    assert credentials["s3"]["secret"] == "s3cret-value"
    assert credentials["mlflow"]["MLFLOW_TRACKING_TOKEN"] == "t0ken-value"
