"""Credentials inside URLs never leave the task: not in run links, the environment, errors, DAG
files, Asset URIs or lineage; and what credentials.yml holds is masked unless it only locates."""

from __future__ import annotations

import pytest

from airflow_kedro_mlflow.runtime import credentials
from airflow_kedro_mlflow.urls import redact_url, url_secrets

PASSWORD = "Pa55w0rd-in-uri"
TOKEN = "t0ken-in-query"
MLFLOW_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_TRACKING_USERNAME",
              "MLFLOW_TRACKING_PASSWORD")


# --- the redaction itself --------------------------------------------------------------------

@pytest.mark.parametrize("url, shown", [
    ("http://user:secret@host:5000", "http://host:5000"),
    ("https://user:token@host/raw.csv", "https://host/raw.csv"),
    ("https://ghp_abcdef@github.com/o/r.git", "https://github.com/o/r.git"),  # a lone token
    ("http://host/x?token=abc&format=csv#part", "http://host/x?format=csv#part"),
    ("http://host/x?Access_Token=a&API_KEY=b&Password=c&secret=d&key=e", "http://host/x"),
    # an Azure SAS: the signature goes, and with it the fields that change with every signature
    ("https://acct.blob.core.windows.net/c/raw.csv?sv=2022-11-02&se=2026-01-01&sp=r&sig=Ab%2Bc%3D",
     "https://acct.blob.core.windows.net/c/raw.csv"),
    # an S3 presigned URL, upper case or not: every signing field goes, the object version stays
    ("https://b.s3.amazonaws.com/k.csv?X-Amz-Algorithm=AWS4&X-AMZ-CREDENTIAL=AKIA%2F1"
     "&X-Amz-Date=1&X-Amz-Security-Token=tok&x-amz-signature=dead&versionId=3",
     "https://b.s3.amazonaws.com/k.csv?versionId=3"),
    ("s3://bucket/data/raw.csv", "s3://bucket/data/raw.csv"),
    ("https://host/path/mail@example.com", "https://host/path/mail@example.com"),  # '@' in a path
    ("data/01_raw/wine.csv", "data/01_raw/wine.csv"),
    ("models:/wine@champion", "models:/wine@champion"),
])
def test_a_shown_url_has_no_user_info_and_no_secret_parameters(url, shown):
    assert redact_url(url) == shown


def test_the_removed_secrets_are_returned_as_written_and_decoded():
    assert url_secrets("postgresql://mlflow:p%40ss@db/mlflow") == ("p%40ss", "p@ss")
    assert url_secrets("https://ghp_abcdef@github.com/o/r.git") == ("ghp_abcdef",)
    assert url_secrets("https://h/x?sv=1&sig=Ab%2Bc%3D&format=csv") == ("Ab%2Bc%3D", "Ab+c=")
    assert url_secrets("https://user@h/x?format=csv") == ("user",)
    assert url_secrets("http://host:5000/?x=1") == ()


# --- credentials.yml: what stays readable ----------------------------------------------------

SIG = "sIgNaTuRe%2Bvalue"


@pytest.mark.parametrize("key, value, readable, secrets", [
    ("endpoint_url", "http://minio:9000", True, ()),
    ("MLFLOW_S3_ENDPOINT_URL", "https://s3.example.com", True, ()),
    ("region_name", "eu-west-1", True, ()),
    ("port", 9000, True, ()),
    ("endpoint_url", f"http://admin:{PASSWORD}@minio:9000", False, (PASSWORD,)),
    ("endpoint_url", f"http://minio:9000/?token={TOKEN}", False, (TOKEN,)),
    ("webhook_url", "https://hooks.slack.com/services/T000/B000/XXXXXXXX", False, ()),  # all of it
    ("webhook_url", f"https://bot:{PASSWORD}@chat.example/hook", False, (PASSWORD,)),
    ("sas_url", f"https://acct.blob.core.windows.net/c?sv=2022-11-02&sig={SIG}", False,
     (SIG, "sIgNaTuRe+value")),  # the signature as written and as a client decodes it
    ("MLFLOW_TRACKING_URI", "http://mlflow:5000", False, ()),  # not known to be harmless
])
def test_credentials_stay_readable_only_where_they_only_locate(monkeypatch, key, value, readable,
                                                               secrets):
    monkeypatch.setattr(credentials, "MASKED", set())
    credentials.mask({"entry": {key: value}})
    line = f"request to {value} failed"
    assert credentials.redact(line) == (line if readable else "request to *** failed")
    for part in secrets:  # any secret part alone is masked too
        assert credentials.redact(f"got {part}") == "got ***"
