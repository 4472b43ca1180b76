"""The exported example DAG: it parses cheaply, it is up to date, and it runs like ``kedro run``."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
from conftest import REPO, copy_example, run_dag, run_kedro

from airflow_kedro_mlflow.export.dagbag import load_dagbag

COMMITTED_DAG = REPO / "dags" / "wine_classifier.py"
NODE_TASKS = {
    "data_processing.load_wine_data",
    "data_processing.clean_data",
    "data_processing.split_data",
    "random_forest.train_model",
    "random_forest.evaluate_model",
    "logistic_regression.train_model",
    "logistic_regression.evaluate_model",
}
RUN_TASKS = {"kedro_run_start", "kedro_promote_model", "kedro_run_end"}
HEAVY_MODULES = ["kedro", "kedro_datasets", "mlflow", "pandas", "boto3", "botocore", "s3fs",
                 "sklearn", "wine_classifier", "airflow_kedro_mlflow.runtime"]


def test_committed_dag_loads_with_one_task_per_node():
    bag = load_dagbag(COMMITTED_DAG)
    assert bag.import_errors == {}
    dag = bag.dags["wine_classifier"]
    assert set(dag.task_ids) == NODE_TASKS | RUN_TASKS
    split = dag.get_task("data_processing.split_data")
    assert split.upstream_task_ids == {"data_processing.clean_data"}
    assert split.downstream_task_ids == {
        "random_forest.train_model",
        "random_forest.evaluate_model",
        "logistic_regression.train_model",
        "logistic_regression.evaluate_model",
    }
    assert dag.get_task("random_forest.evaluate_model").upstream_task_ids == {
        "random_forest.train_model",
        "data_processing.split_data",
    }
    assert dag.get_task("kedro_run_start").downstream_task_ids >= {"data_processing.load_wine_data"}
    end = dag.get_task("kedro_run_end")
    assert end.is_teardown
    promote = dag.get_task("kedro_promote_model")
    assert promote.upstream_task_ids == {"random_forest.evaluate_model", "logistic_regression.evaluate_model"}
    assert "kedro_promote_model" in end.upstream_task_ids
    assert promote.max_active_tis_per_dag == 1  # concurrent runs take turns at the gate
    assert "inputs: `X_train`" in dag.get_task("random_forest.train_model").doc_md
    assert {group for group in dag.task_group_dict} == {
        "data_processing", "random_forest", "logistic_regression"
    }


@pytest.mark.parametrize("env, dag_files", [
    (None, ["wine_classifier.py", "wine_classifier__inference.py"]),
    ("s3", ["wine_classifier_s3.py", "wine_classifier__inference_s3.py"]),
])
def test_committed_dag_matches_a_fresh_export(tmp_path, env, dag_files):
    """Re-exporting must not change dags/: the committed files are what the exporter writes."""
    project = copy_example(tmp_path / "examples" / "wine_classifier")
    env_args = ["--env", env] if env else []
    done = run_kedro(project, "airflow", "export", *env_args, "-p", "__default__", "-p",
                     "inference", "--target-dir", str(tmp_path / "dags"))
    # without -v: only the table and the DAGs' edges; no log line or warning of Kedro or MLflow
    assert done.stdout.startswith("DAG ") and done.stderr == "", done.stdout[:800] + done.stderr
    for dag_file in dag_files:
        fresh = (tmp_path / "dags" / dag_file).read_text()
        committed = (REPO / "dags" / dag_file).read_text()
        assert fresh == committed, f"dags/{dag_file} is stale: run `kedro airflow export` again"


def test_dag_file_holds_no_machine_path():
    text = COMMITTED_DAG.read_text()
    assert str(REPO) not in text
    assert "path='../examples/wine_classifier'" in text


def test_dag_file_imports_no_heavy_module_at_parse_time():
    probe = textwrap.dedent(
        f"""
        import runpy, sys
        runpy.run_path({str(COMMITTED_DAG)!r})
        heavy = [m for m in {HEAVY_MODULES!r}
                 if any(name == m or name.startswith(m + ".") for name in sys.modules)]
        print("HEAVY", ",".join(heavy))
        """
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert "HEAVY \n" in result.stdout or result.stdout.rstrip().endswith("HEAVY"), result.stdout


def _outputs(project: Path) -> dict:
    data = project / "data"
    models = {}
    for ns in ("random_forest", "logistic_regression"):
        versions = sorted((data / "06_models" / ns / "model.pkl").iterdir())
        assert len(versions) == 1, versions
        with open(versions[0] / "model.pkl", "rb") as stream:
            models[ns] = pickle.load(stream)
    (raw_file,) = (data / "01_raw" / "wine.csv").glob("*/wine.csv")  # the run's one version
    raw = pd.read_csv(raw_file)
    features = raw.drop(columns="target")
    features.columns = [c.replace("/", "_").replace(" ", "_").lower() for c in features.columns]
    return {
        "raw": raw,
        "metrics": {
            ns: json.loads((data / "08_reporting" / ns / "metrics.json").read_text())
            for ns in models
        },
        "predictions": {ns: list(model.predict(features)) for ns, model in models.items()},
        "plots": sorted(p.relative_to(data).as_posix() for p in data.rglob("*.png")),
    }


@pytest.mark.slow
def test_example_dag_runs_green_and_matches_kedro_run(airflow_db, workspace, tmp_path):
    baseline = copy_example(tmp_path / "kedro_run" / "wine_classifier")
    run_kedro(baseline, "run")

    project = copy_example(workspace / "examples" / "wine_classifier")
    run_kedro(project, "airflow", "export", "--target-dir", str(workspace / "dags"))
    result = run_dag(workspace / "dags" / "wine_classifier.py", "wine_classifier")

    assert result.state == "success", result
    assert set(result.tasks.values()) == {"success"}, result.tasks
    assert set(result.tasks) == NODE_TASKS | RUN_TASKS

    expected, actual = _outputs(baseline), _outputs(project)
    pd.testing.assert_frame_equal(actual["raw"], expected["raw"])
    assert actual["metrics"] == expected["metrics"]
    assert actual["predictions"] == expected["predictions"]
    assert actual["plots"] == expected["plots"] and len(actual["plots"]) == 2
    store = project / "data" / "airflow_intermediate" / "wine_classifier"
    (run_folder,) = store.iterdir()  # kept for the retention: any task can be cleared
    assert {"X_train.pickle", "_dag_run_end.json"} <= {p.name for p in run_folder.iterdir()}
    # logging the sklearn models leaves no false deprecation warnings in the task logs
    assert "skops/io/_utils.py" not in result.output
    assert "DeprecatedImportWarning" not in result.output
