"""The pipeline's parameters as DAG params (the trigger form), and the run conf that changes them."""

from __future__ import annotations

import json

import pytest
import yaml
from conftest import EXAMPLE_PROJECT, REPO, load_exported_dag, run_dag, run_kedro
from kedro_projects import RELAY_PARAMETERS, relay_project

from airflow_kedro_mlflow.config.run_conf import check_known, overrides
from airflow_kedro_mlflow.core.errors import ConfigError


def _parameters(project) -> dict:
    merged: dict = {}
    for path in sorted((project / "conf" / "base").glob("parameters*.yml")):
        merged.update(yaml.safe_load(path.read_text()))
    return merged


def test_exported_dag_offers_each_parameter_its_nodes_read_typed_with_its_value():
    dag = load_exported_dag(REPO / "dags" / "wine_classifier.py")  # the committed export of the example
    parameters = _parameters(EXAMPLE_PROJECT)
    assert sorted(dag.params) == ["data_processing", "logistic_regression", "random_forest"]
    for name in dag.params:
        param = dag.params.get_param(name)
        assert param.value == parameters[name]
        assert param.schema["type"] == "object"
    relay = _load_relay_params()
    assert {name: relay.get_param(name).schema["type"] for name in relay} == {
        "count": "integer", "fail": "boolean", "fail_marker": "string",
        "fail_once_marker": "string"}


def _load_relay_params():
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as folder:
        project = relay_project(Path(folder))
        run_kedro(project, "airflow", "export", "--target-dir", str(Path(folder) / "dags"))
        return load_exported_dag(Path(folder) / "dags" / "relay.py").params


def test_conf_passes_only_what_it_changes_down_to_the_nested_key():
    defaults = {"model": {"options": {"depth": 5, "trees": 100}, "name": "rf"}, "seed": 1,
                "layers": [1, 2]}
    form = json.loads(json.dumps(defaults))  # the trigger form submits every param
    assert overrides(form, defaults) == {}
    form["model"]["options"]["depth"] = 7
    form["layers"] = [1, 2, 3]
    assert overrides(form, defaults) == {"model": {"options": {"depth": 7}}, "layers": [1, 2, 3]}
    assert overrides({"new": {"a": 1}}, defaults) == {"new": {"a": 1}}


def test_a_conf_still_changes_parameters_after_airflow_applied_it_to_the_params():
    """Airflow builds each task's context by applying the run's conf to the Param objects it
    merges, in place; the tasks must still tell the conf from the DAG's declared defaults, and
    carry no copy of the DAG's params into the serialized DAG."""
    from types import SimpleNamespace

    from airflow.sdk.definitions.param import process_params

    from airflow_kedro_mlflow.operators.base import run_params

    dag = load_exported_dag(REPO / "dags" / "wine_classifier.py")
    start, node = dag.get_task("kedro_run_start"), dag.get_task("data_processing.split_data")
    conf = json.loads(json.dumps({k: dag.params[k] for k in dag.params}))  # the whole form
    conf["random_forest"]["model_options"]["n_estimators"] = 7
    for task in (start, node):  # each task's context, as the task runner makes it
        process_params(dag, task, conf, suppress_exception=False)
        assert not task.params
        assert run_params({"dag_run": SimpleNamespace(conf=conf)}, task.param_defaults) == {
            "random_forest": {"model_options": {"n_estimators": 7}}}


def test_unknown_top_level_conf_key_is_named_nested_new_keys_are_allowed():
    parameters = {"model": {"options": {}}, "seed": 1}
    check_known({"model": {"options": {"max_depth": 3}}}, parameters, "project x")
    with pytest.raises(ConfigError, match=r"'sead' is not a parameter of project x \(its "
                                          r"parameters: model, seed\)"):
        check_known({"sead": 2}, parameters, "project x")


@pytest.mark.slow
def test_bad_conf_key_fails_the_start_task_and_an_unchanged_form_keeps_current_values(
        airflow_db, workspace):
    project = relay_project(workspace, package="relay_params")
    run_kedro(project, "airflow", "export", "--target-dir", str(workspace / "dags"))
    dag_file = workspace / "dags" / "relay_params.py"

    typo = run_dag(dag_file, "relay_params", conf={"cuont": 3})
    assert typo.state == "failed"
    assert typo.tasks["kedro_run_start"] == "failed"
    assert typo.tasks["make_numbers"] == "upstream_failed"
    assert ("DAG run conf key 'cuont' is not a parameter of Kedro project 'relay_params' "
            "(env local (Kedro's default))") in typo.output
    assert "XCom not found" not in typo.output  # the failed start task's link reads "no run"

    # parameters.yml changed after the export; the form still shows (and submits) the old values
    changed = {**RELAY_PARAMETERS, "count": 4}
    (project / "conf" / "base" / "parameters.yml").write_text(yaml.safe_dump(changed))
    untouched = run_dag(dag_file, "relay_params", conf=dict(RELAY_PARAMETERS))
    assert untouched.state == "success", untouched
    report = json.loads((project / "data" / "report.json").read_text())
    assert report["count"] == 4  # the project's current value, not the stale form's 10
