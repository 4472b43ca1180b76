"""What a worker preloads for the tasks of exported DAGs (``airflow_kedro_mlflow.preload``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from conftest import copy_example

PROBE = textwrap.dedent(
    """
    import json, logging, os, sys
    logging.basicConfig(format="%(levelname)s %(message)s")
    import airflow_kedro_mlflow.preload  # what a worker's forkserver or Celery worker imports
    loaded = {m for m in ("pandas", "sklearn", "matplotlib", "mlflow", "skops.io",
                          "kedro_datasets.pandas", "kedro.framework.session") if m in sys.modules}
    own = sorted(m for m in sys.modules if m.split(".")[0] == "wine_classifier")
    nodes = os.path.join(sys.argv[1], "src", "wine_classifier", "pipelines", "data_processing",
                         "nodes.py")
    with open(nodes, "a") as source:  # a deploy of new project code, after the worker started
        source.write("\\nDEPLOYED_AFTER_PRELOAD = True\\n")
    from pathlib import Path
    from airflow_kedro_mlflow.config.kedro_project import bootstrap
    from kedro.framework.project import pipelines
    bootstrap(Path(sys.argv[1]))  # what the task then does
    func = pipelines["__default__"].nodes[0].func
    print("RESULT " + json.dumps({
        "preloaded": os.environ.get("AIRFLOW_KEDRO_MLFLOW_PRELOADED"), "loaded": sorted(loaded),
        "own": own, "fresh": getattr(sys.modules[func.__module__], "DEPLOYED_AFTER_PRELOAD", False),
    }))
    """
)


def _probe(projects: str, project_arg: str) -> dict:
    env = {**os.environ, "AIRFLOW__KEDRO_MLFLOW__PRELOAD_PROJECTS": projects}
    result = subprocess.run([sys.executable, "-c", PROBE, project_arg], capture_output=True,
                            text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-4000:]
    line = next(x for x in result.stdout.splitlines() if x.startswith("RESULT "))
    return {**json.loads(line.removeprefix("RESULT ")), "log": result.stdout + result.stderr}


def test_preload_imports_a_projects_dependencies_never_its_code(tmp_path):
    project = copy_example(tmp_path / "wine_classifier")
    found = _probe(str(project), str(project))
    assert found["preloaded"] == "kedro,wine_classifier"
    # what its nodes import, the dataset classes and the MLflow flavor its catalog names
    assert found["loaded"] == ["kedro.framework.session", "kedro_datasets.pandas", "matplotlib",
                               "mlflow", "pandas", "sklearn", "skops.io"]
    assert found["own"] == []  # the project's modules were forgotten again...
    assert found["fresh"] is True  # ...so a task runs the project code on disk


def test_a_project_that_cannot_be_preloaded_is_named_and_skipped(tmp_path):
    project = copy_example(tmp_path / "wine_classifier")
    missing = tmp_path / "no_such_project"
    found = _probe(f"{missing},{project}", str(project))
    assert found["preloaded"] == "kedro,wine_classifier"
    assert f"project {missing} not preloaded" in found["log"]
