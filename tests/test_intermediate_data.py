"""Data passed in memory between Kedro nodes crosses Airflow task boundaries, per DAG run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_dag, run_kedro
from kedro_projects import relay_project

from airflow_kedro_mlflow.runtime.intermediate import END_RECORD, SIGNATURE_HEADER

pytestmark = pytest.mark.slow


@pytest.fixture
def relay(airflow_db, workspace) -> tuple[Path, Path]:
    project = relay_project(workspace, package="relay")
    run_kedro(project, "airflow", "export", "--target-dir", str(workspace / "dags"))
    return project, workspace / "dags" / "relay.py"


def _run_folders(project: Path) -> list[Path]:
    root = project / "data" / "airflow_intermediate" / "relay"
    return sorted(root.iterdir()) if root.exists() else []


def _files(folder: Path) -> set[str]:
    return {p.name for p in folder.rglob("*") if p.is_file()}


def test_memory_datasets_cross_tasks_and_are_kept_after_success_for_the_retention(relay):
    """A successful run keeps its data (any task can be cleared and rerun) with its end record;
    the next run's end task removes it once ``intermediate_retention`` is over."""
    project, dag_file = relay
    result = run_dag(dag_file, "relay", conf={"count": 7})

    assert result.state == "success", result
    assert result.tasks == {
        "kedro_run_start": "success",
        "make_numbers": "success",
        "split_parity": "success",
        "summarize": "success",
        "report": "success",
        "kedro_run_end": "success",
    }
    assert json.loads((project / "data" / "report.json").read_text()) == {"total": 21, "count": 7}
    (first,) = _run_folders(project)
    assert _files(first) == {"numbers.pickle", "evens.pickle", "odds.pickle", END_RECORD}

    airflow_yml = project / "conf" / "base" / "airflow.yml"
    airflow_yml.write_text("default:\n  intermediate_retention: 0\n")
    again = run_dag(dag_file, "relay", conf={"count": 3})
    assert again.state == "success", again
    assert _run_folders(project) == []  # both past a retention of 0


def test_failed_run_keeps_intermediate_data(relay):
    project, dag_file = relay
    result = run_dag(dag_file, "relay", conf={"fail": True})

    assert result.state == "failed"
    assert result.tasks["summarize"] == "failed"
    assert result.tasks["report"] == "upstream_failed"
    assert result.tasks["kedro_run_end"] == "success"
    (folder,) = _run_folders(project)
    assert _files(folder) == {"numbers.pickle", "evens.pickle", "odds.pickle", END_RECORD}
    assert "planned failure in summarize" in result.output


def test_clean_intermediate_removes_finished_runs_data_only_when_asked(relay):
    project, dag_file = relay
    failed = run_dag(dag_file, "relay", conf={"fail": True})
    assert failed.state == "failed"
    (ended,) = _run_folders(project)
    in_progress = ended.parent / "manual__still-running"  # a run whose end task has not run
    in_progress.mkdir()
    (in_progress / "numbers.pickle").write_bytes(b"data")

    listing = run_kedro(project, "airflow", "clean-intermediate").stdout
    assert ("Would remove (dry run; add --delete): 0 run folder(s) older than their DAG's "
            "intermediate_retention") in listing
    dry = run_kedro(project, "airflow", "clean-intermediate", "--older-than", "0m").stdout
    assert "would remove" in dry and "summarize" in dry and "no end record" in dry
    assert ended.exists()

    run_kedro(project, "airflow", "clean-intermediate", "--older-than", "0m", "--delete")
    assert not ended.exists()
    assert _files(in_progress) == {"numbers.pickle"}  # never judged finished without a record
    bad = run_kedro(project, "airflow", "clean-intermediate", "--older-than", "soon", check=False)
    assert bad.returncode != 0 and "--older-than 'soon'" in bad.stderr


def test_runs_keep_separate_data_and_versions_and_a_rerun_reads_its_own(relay, tmp_path):
    """Run A fails at its last task; run B then saves a newer version; A's task rerun reads A's."""
    project, dag_file = relay
    marker = tmp_path / "fail-report"
    marker.touch()
    run_a = run_dag(dag_file, "relay", conf={"count": 10, "fail_marker": str(marker)})
    assert run_a.tasks["report"] == "failed"
    marker.unlink()
    run_b = run_dag(dag_file, "relay", conf={"count": 4, "fail_marker": str(marker)})
    assert run_b.state == "success"

    versions = sorted((project / "data" / "summary.json").iterdir())
    assert len(versions) == 2, versions
    assert json.loads((project / "data" / "report.json").read_text()) == {"total": 6, "count": 4}

    rerun = subprocess.run(
        [sys.executable, "-m", "airflow", "tasks", "test", "relay", "report", run_a.run_id],
        capture_output=True, text=True, timeout=300,
    )
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    # Run A's report is computed from run A's summary version, not from run B's newer one.
    assert json.loads((project / "data" / "report.json").read_text()) == {"total": 45, "count": 10}
    folders = _run_folders(project)  # both kept (within the retention), each in its own folder
    assert len(folders) == 2
    assert all(_files(f) == {"numbers.pickle", "evens.pickle", "odds.pickle", END_RECORD}
               for f in folders)


PLANTED = """
import pickle, sys


class Plant:
    def __reduce__(self):
        return (open, (sys.argv[2], "w"))


with open(sys.argv[1], "wb") as stream:
    pickle.dump(Plant(), stream)
"""


def test_a_payload_planted_in_the_store_fails_the_task_and_never_runs(relay, tmp_path):
    """Someone who can write the store replaces a kept payload by a pickle that would run code:
    the task that reads it fails, saying it is not trusted, and the code never runs."""
    project, dag_file = relay
    failed = run_dag(dag_file, "relay", conf={"fail": True})
    assert failed.tasks["summarize"] == "failed"
    (folder,) = _run_folders(project)
    assert all(path.read_bytes().startswith(SIGNATURE_HEADER)
               for path in folder.glob("*.pickle"))  # signed by the run's tasks

    marker = tmp_path / "planted-code-ran"
    subprocess.run([sys.executable, "-c", PLANTED, str(folder / "evens.pickle"), str(marker)],
                   check=True)
    rerun = subprocess.run(
        [sys.executable, "-m", "airflow", "tasks", "test", "relay", "summarize", failed.run_id],
        capture_output=True, text=True, timeout=300,
    )
    output = rerun.stdout + rerun.stderr
    assert (f"intermediate dataset 'evens' of DAG run '{failed.run_id}' (DAG 'relay')" in output
            and "is not trusted: it is not signed" in output), output[-5000:]
    assert "planned failure in summarize" not in output  # the node never ran
    assert not marker.exists()
