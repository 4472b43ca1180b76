"""Where a planted credential must never turn up: files, database dumps, MLflow runs."""

from __future__ import annotations

from pathlib import Path


def file_contents(*paths: Path) -> dict[str, bytes]:
    """Every file under ``paths`` (files or folders), by path."""
    found: dict[str, bytes] = {}
    for path in paths:
        for file in [path] if path.is_file() else path.rglob("*"):
            if file.is_file():
                found[str(file)] = file.read_bytes()
    return found


def mlflow_runs(tracking_uri: str, experiment: str) -> dict[str, bytes]:
    """The params and tags of every run of ``experiment``, by run."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    return {
        f"MLflow run {run.info.run_id}": repr((run.data.params, run.data.tags)).encode()
        for run in client.search_runs([found.experiment_id])
    }


def assert_nowhere(planted: tuple[str, ...], places: dict[str, bytes]) -> None:
    for value in planted:
        leaks = [where for where, content in places.items() if value.encode() in content]
        assert not leaks, f"planted credential found in: {leaks}"
