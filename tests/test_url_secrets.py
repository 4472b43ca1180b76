"""Credentials inside URLs never leave the task: not in run links, the environment, errors, DAG
files, Asset URIs or lineage; and what credentials.yml holds is masked unless it only locates."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from kedro.pipeline import Pipeline, node

from airflow_kedro_mlflow.config import credentials
from airflow_kedro_mlflow.config.catalog import catalog_resolver
from airflow_kedro_mlflow.config.mlflow import settings_from_dict as mlflow_settings
from airflow_kedro_mlflow.config.pipeline import settings_from_dict as airflow_settings
from airflow_kedro_mlflow.core.errors import ConfigError
from airflow_kedro_mlflow.core.urls import redact_url, url_secrets
from airflow_kedro_mlflow.export.compiler import compile_pipeline
from airflow_kedro_mlflow.export.dagbag import load_dagbag
from airflow_kedro_mlflow.export.renderer import render_dag
from airflow_kedro_mlflow.runtime.lineage import node_lineage
from airflow_kedro_mlflow.runtime.mlflow_env import point_mlflow_at
from airflow_kedro_mlflow.runtime.mlflow_rest import RestTrackingClient, TrackingError

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


# --- MLflow: run links, the task's environment, the REST client ------------------------------

def _mlflow(uri: str, registry: str | None = None):
    return mlflow_settings({"server": {"mlflow_tracking_uri": uri, "mlflow_registry_uri": registry}},
                           project_path=Path("/project"), pipeline_name="__default__",
                           package_name="pkg", source="conf/base/mlflow.yml", environ={})


def test_the_run_link_names_the_server_without_credentials():
    from airflow_kedro_mlflow.runtime.mlflow_rest import Run, RunData, RunInfo
    from airflow_kedro_mlflow.runtime.tracking import Tracker

    settings = _mlflow(f"https://user:{PASSWORD}@mlflow.example:5000/?token={TOKEN}")
    parent = Run(RunInfo(run_id="abc", experiment_id="7", status="RUNNING"), RunData())
    link = Tracker(settings).run_url(parent)  # what start, node and end tasks push to XCom
    assert link == "https://mlflow.example:5000/#/experiments/7/runs/abc"
    assert settings.tracking_uri == f"https://mlflow.example:5000/?token={TOKEN}"  # the client's
    assert PASSWORD not in repr(settings)


def test_the_task_environment_names_the_server_without_the_password(monkeypatch):
    for name in MLFLOW_ENV:
        monkeypatch.delenv(name, raising=False)  # restored after the test
    monkeypatch.setattr(credentials, "MASKED", set())
    settings = _mlflow(f"http://alice:{PASSWORD}@mlflow.example:5000",
                       registry=f"https://alice:{PASSWORD}@registry.example")
    point_mlflow_at(settings)
    assert os.environ["MLFLOW_TRACKING_URI"] == "http://mlflow.example:5000"
    assert os.environ["MLFLOW_REGISTRY_URI"] == "https://registry.example"
    # MLflow's documented variables carry the user and password, and only they do
    assert os.environ["MLFLOW_TRACKING_USERNAME"] == "alice"
    assert os.environ["MLFLOW_TRACKING_PASSWORD"] == PASSWORD
    assert [n for n, v in os.environ.items() if PASSWORD in v] == ["MLFLOW_TRACKING_PASSWORD"]
    assert credentials.redact(f"login failed for {PASSWORD}") == "login failed for ***"
    # what a process the task starts (a node runner, a subprocess of node code) inherits
    seen = subprocess.run([sys.executable, "-c", "import os; print(os.environ['MLFLOW_TRACKING_URI'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    assert seen == "http://mlflow.example:5000"


def test_a_user_and_password_set_already_win_over_the_uris(monkeypatch):
    for name in MLFLOW_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "svc")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "from-credentials-yml")
    point_mlflow_at(_mlflow(f"http://alice:{PASSWORD}@mlflow.example:5000"))
    assert os.environ["MLFLOW_TRACKING_USERNAME"] == "svc"
    assert PASSWORD not in "".join(os.environ.values())


def test_a_database_uri_keeps_its_user_info_masked(monkeypatch):
    for name in MLFLOW_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(credentials, "MASKED", set())
    point_mlflow_at(_mlflow(f"postgresql://mlflow:{PASSWORD}@db:5432/mlflow"))
    assert os.environ["MLFLOW_TRACKING_URI"] == f"postgresql://mlflow:{PASSWORD}@db:5432/mlflow"
    assert "MLFLOW_TRACKING_PASSWORD" not in os.environ
    assert PASSWORD not in credentials.redact(os.environ["MLFLOW_TRACKING_URI"])


def test_tracking_and_registry_with_different_credentials_are_refused():
    with pytest.raises(ConfigError, match="'server.mlflow_registry_uri' carry different user-info"):
        _mlflow("http://alice:one@mlflow.example", registry="http://bob:two@registry.example")


class _Refusing(BaseHTTPRequestHandler):
    """A tracking server that refuses every request, recording its Authorization header."""

    seen: list[str | None] = []

    def do_GET(self):  # noqa: N802 - http.server's name
        self.seen.append(self.headers.get("Authorization"))
        body = json.dumps({"error_code": "PERMISSION_DENIED", "message": "no"}).encode()
        self.send_response(403)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def refusing_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Refusing)
    _Refusing.seen = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], _Refusing.seen
    server.shutdown()
    server.server_close()


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize("from_env", [True, False])
def test_the_rest_client_authenticates_like_mlflow_and_never_names_the_password(
        monkeypatch, refusing_server, from_env):
    port, seen = refusing_server
    for name in MLFLOW_ENV + ("MLFLOW_TRACKING_TOKEN",):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    if from_env:  # what Tracker.open sets up
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "alice")
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", PASSWORD)
        uri = f"http://127.0.0.1:{port}"
    else:  # a URI with user-info handed to the client directly
        uri = f"http://alice:{PASSWORD}@127.0.0.1:{port}"
    with pytest.raises(TrackingError) as caught:
        RestTrackingClient(uri).get_run("abc")
    assert seen == [_basic("alice", PASSWORD)]
    assert str(caught.value).startswith(
        f"MLflow tracking server answered 403 to http://127.0.0.1:{port}/api/2.0/mlflow/runs/get")
    assert PASSWORD not in str(caught.value) and "alice" not in str(caught.value)


# --- Asset URIs in DAG files, Airflow's asset list, lineage ---------------------------------

CATALOG = {
    "raw": {"type": "pandas.CSVDataset", "filepath": "https://user:token@host/raw.csv"},
    "signed": {"type": "pandas.CSVDataset",
               "filepath": f"https://acct.blob.core.windows.net/c/signed.csv?sv=1&sig={SIG}"},
}


def identity(x):
    return x


def _pipeline():
    return Pipeline([node(identity, "params:source", "raw", name="load"),
                     node(identity, "raw", "signed", name="sign")])


def test_an_exported_dag_names_catalog_urls_without_credentials(tmp_path):
    manifest = compile_pipeline(_pipeline(), catalog=catalog_resolver(CATALOG), package_name="pkg",
                                project_name="pkg", pipeline_name="__default__", env=None)
    settings = airflow_settings({"default": {"schedule": ["https://user:token@host/upstream.csv"]}},
                                "__default__", "conf/base/airflow.yml", pipelines=["__default__"])
    source = render_dag(manifest, settings, "..", None)
    assert "user:" not in source and "token" not in source and SIG not in source
    assert "Asset('https://host/raw.csv')" in source
    (tmp_path / "pkg.py").write_text(source)
    dag = load_dagbag(tmp_path).dags["pkg"]
    published = {(a.name, a.uri) for t in dag.tasks for a in t.outlets}
    assert published == {("https://host/raw.csv", "https://host/raw.csv"),
                         ("https://acct.blob.core.windows.net/c/signed.csv",
                          "https://acct.blob.core.windows.net/c/signed.csv")}


def test_lineage_names_catalog_urls_without_credentials():
    lineage = node_lineage(_pipeline(), ("sign",), CATALOG, "pkg")
    assert [(d.namespace, d.name) for d in lineage.inputs] == [("https://host", "raw.csv")]
    assert [(d.namespace, d.name) for d in lineage.outputs] == [
        ("https://acct.blob.core.windows.net", "c/signed.csv")]


def test_log_records_carry_masked_credentials_as_stars_wherever_they_go(monkeypatch):
    """Airflow's LocalExecutor echoes task log lines to the scheduler's stdout unmasked: a record
    of this process is redacted where it is made (message, arguments and traceback)."""
    import logging

    monkeypatch.setattr(credentials, "MASKED", set())
    webhook = f"https://hooks.slack.com/services/T0/B0/{TOKEN}"
    credentials.mask({"webhook_url": webhook})
    seen: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = seen.append  # type: ignore[method-assign]
    logger = logging.getLogger("akm-test.redaction")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("posting to %s", webhook)
        try:
            raise ConnectionError(f"cannot reach {webhook}")
        except ConnectionError:
            logger.exception("notice failed")
        logger.warning("nothing secret: %s", "hooks.slack.com")
    finally:
        logger.removeHandler(handler)
    shown = [record.getMessage() for record in seen]
    assert shown[0] == "posting to ***"
    assert shown[1].startswith("notice failed\n") and "cannot reach ***" in shown[1]
    assert seen[1].exc_info is None  # the traceback went into the redacted message
    assert shown[2] == "nothing secret: hooks.slack.com" and seen[2].args == ("hooks.slack.com",)
    assert TOKEN not in "".join(shown)
