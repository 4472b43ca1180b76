"""Fast tests of the task-side MLflow pieces that need no Airflow run."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from conftest import free_port

from airflow_kedro_mlflow.runtime.mlflow_rest import RestTrackingClient, TrackingError, tracking_client


def test_http_tracking_uri_gets_the_light_client_others_mlflows(tmp_path):
    assert isinstance(tracking_client("http://127.0.0.1:5000"), RestTrackingClient)
    # a store in the test's folder: MLflow's client creates it (not in the working directory)
    assert not isinstance(tracking_client(f"sqlite:///{tmp_path / 'mlflow.db'}"), RestTrackingClient)


def test_unreachable_server_is_retried_then_named(monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_JITTER", "0")
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(TrackingError, match=f"unreachable at {url}/api/2.0/mlflow/runs/get"):
        RestTrackingClient(url).get_run("abc")


def test_parent_becomes_active_when_node_code_imports_mlflow_later():
    """No MLflow import to activate the parent; MLflow's fluent API still logs into it."""
    probe = textwrap.dedent(
        """
        import sys
        from airflow_kedro_mlflow.runtime.active_run import activated
        from airflow_kedro_mlflow.runtime.mlflow_rest import Run, RunData, RunInfo

        parent = Run(RunInfo(run_id="p1", experiment_id="7", status="RUNNING"), RunData())
        with activated(parent):
            assert "mlflow" not in sys.modules
            import mlflow  # what node code or a dataset does

            active = mlflow.active_run()
            print(active.info.run_id, active.info.experiment_id)
        print(mlflow.active_run())
        """
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["p1", "7", "None"]
