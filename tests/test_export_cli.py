"""``kedro airflow export`` as a user runs it: what it writes, and its errors on bad input."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from conftest import copy_example, load_exported_dag, run_kedro
from kedro_projects import RELAY_CATALOG, RELAY_NODES, relay_project, write_project

COLLIDING_REGISTRY = '''
from kedro.pipeline import Pipeline, node

from {package}.nodes import make_numbers, split_parity


def register_pipelines():
    return {{"__default__": Pipeline([
        node(make_numbers, "params:count", "numbers", name="make.numbers"),
        node(split_parity, "numbers", ["evens", "odds"], name="make_numbers"),
    ])}}
'''


@pytest.fixture
def relay(tmp_path) -> Path:
    return relay_project(tmp_path, package="relay_cli")


def _assert_clean_failure(result, *fragments: str) -> None:
    assert result.returncode != 0
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("Error: "), result.stderr
    for fragment in fragments:
        assert fragment in message, message
    assert "Traceback" not in result.stderr


def test_export_writes_dag_and_prints_table(relay, tmp_path):
    target = tmp_path / "dags"
    result = run_kedro(relay, "airflow", "export", "--target-dir", str(target), "--check")
    assert sorted(os.listdir(target)) == ["relay_cli.py"]
    assert "relay_cli" in result.stdout and "written" in result.stdout
    assert "  report  <- summarize" in result.stdout
    again = run_kedro(relay, "airflow", "export", "--target-dir", str(target))
    assert "unchanged" in again.stdout


def test_export_all_pipelines_names_dags_after_pipelines(relay, tmp_path):
    # the registry's "empty" pipeline cannot be exported, so export the others by name
    result = run_kedro(relay, "airflow", "export", "-p", "relay", "-p", "__default__",
                       "--target-dir", str(tmp_path / "dags"))
    assert sorted(os.listdir(tmp_path / "dags")) == ["relay_cli.py", "relay_cli__relay.py"]
    assert "relay_cli__relay" in result.stdout


def test_unknown_pipeline_is_named_and_nothing_is_written(relay, tmp_path):
    result = run_kedro(relay, "airflow", "export", "-p", "nope", "--target-dir",
                       str(tmp_path / "dags"), check=False)
    _assert_clean_failure(result, "unknown pipeline 'nope'", "relay")
    assert not (tmp_path / "dags").exists() or not os.listdir(tmp_path / "dags")


def test_empty_pipeline_is_an_error(relay, tmp_path):
    result = run_kedro(relay, "airflow", "export", "--all", "--target-dir",
                       str(tmp_path / "dags"), check=False)
    _assert_clean_failure(result, "pipeline 'empty'", "no nodes")
    assert not (tmp_path / "dags").exists() or not os.listdir(tmp_path / "dags")


def test_all_exports_what_can_run_and_names_the_pipeline_that_cannot_alone(tmp_path):
    """The example's model_training reads the splits data_processing keeps in memory: it runs
    only inside __default__. --all exports the others and says why it skipped that one."""
    project = copy_example(tmp_path / "wine_classifier")
    result = run_kedro(project, "airflow", "export", "--all", "--target-dir",
                       str(tmp_path / "dags"))
    assert sorted(p.name for p in (tmp_path / "dags").iterdir()) == [
        "wine_classifier.py", "wine_classifier__data_processing.py",
        "wine_classifier__inference.py"]
    assert "Skipped pipeline 'model_training': it cannot run on its own: node " in result.stderr
    assert "which is not in the catalog (so it lives in memory)" in result.stderr
    named = run_kedro(project, "airflow", "export", "-p", "model_training", "--target-dir",
                      str(tmp_path / "dags"), check=False)  # named, it is still an error
    _assert_clean_failure(named, "pipeline 'model_training'", "not in the catalog")


def test_unknown_env_is_named(relay, tmp_path):
    result = run_kedro(relay, "airflow", "export", "-e", "prod", "--target-dir",
                       str(tmp_path / "dags"), check=False)
    _assert_clean_failure(result, "unknown Kedro env 'prod'")


def test_task_id_collision_names_both_nodes(tmp_path):
    project = write_project(tmp_path, "collide", RELAY_NODES, COLLIDING_REGISTRY,
                            parameters={"count": 3})
    result = run_kedro(project, "airflow", "export", "--target-dir", str(tmp_path / "dags"),
                       check=False)
    _assert_clean_failure(result, "'make.numbers'", "'make_numbers'", "make_numbers")
    assert not (tmp_path / "dags").exists() or not os.listdir(tmp_path / "dags")


def test_unwritable_target_is_an_error(relay, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = run_kedro(relay, "airflow", "export", "--target-dir", str(blocker / "dags"),
                       check=False)
    _assert_clean_failure(result, str(blocker / "dags"))


def test_invalid_airflow_yml_key_names_file_and_key(tmp_path):
    project = relay_project(tmp_path, package="badconf",
                            extra_conf={"airflow.yml": {"default": {"intermediate_stor": "x"}}})
    result = run_kedro(project, "airflow", "export", "--target-dir", str(tmp_path / "dags"),
                       check=False)
    _assert_clean_failure(result, "airflow.yml", "default.intermediate_stor")


def test_kedro_airflow_create_still_works_beside_export(relay, tmp_path):
    listing = run_kedro(relay, "airflow", "--help")
    assert "create" in listing.stdout and "export" in listing.stdout
    assert "Run project with Airflow" not in listing.stdout  # kedro-airflow's own description
    assert "writes one DAG file per pipeline" in " ".join(listing.stdout.split())
    run_kedro(relay, "airflow", "create", "--target-dir", str(tmp_path / "kedro_airflow_dags"))
    assert list((tmp_path / "kedro_airflow_dags").glob("*.py"))


def test_airflow_yml_schedule_and_task_defaults_reach_the_dag(tmp_path):
    project = relay_project(tmp_path, package="scheduled", extra_conf={"airflow.yml": {
        "default": {"schedule": "*/5 * * * *", "start_date": [2026, 1, 1], "retries": 2,
                    "retry_delay": "30s", "max_active_runs": 3, "owner": "ml-team",
                    "tags": ["nightly"], "pools": {"heavy": "big_memory"},
                    "queues": {"heavy": "gpu"}},
    }})
    run_kedro(project, "airflow", "export", "--target-dir", str(tmp_path / "dags"))
    dag = load_exported_dag(tmp_path / "dags" / "scheduled.py")
    # the Task SDK's timetable (Airflow >= 3.2) has .expression, the older core one .summary
    assert (getattr(dag.timetable, "expression", None) or dag.timetable.summary) == "*/5 * * * *"
    assert dag.max_active_runs == 3 and not dag.catchup
    assert dag.start_date.isoformat() == "2026-01-01T00:00:00+00:00"
    task = dag.get_task("report")
    assert task.retries == 2 and task.retry_delay.total_seconds() == 30 and task.owner == "ml-team"
    assert {"kedro", "scheduled", "nightly"} <= set(dag.tags)
    # a node tagged `heavy` goes to the configured pool and queue; the others keep the defaults
    summarize = dag.get_task("summarize")
    assert (summarize.pool, summarize.queue) == ("big_memory", "gpu")
    assert (task.pool, task.queue) == ("default_pool", "default")
    # persisted outputs are published as assets: summary.json and report.json
    assert [o.uri for o in dag.get_task("summarize").outlets] == ["kedro://scheduled/summary"]


def test_a_dag_can_be_scheduled_on_another_dags_asset(tmp_path):
    project = relay_project(tmp_path, package="consumer", extra_conf={"airflow.yml": {
        "default": {"schedule": ["kedro://wine_classifier/random_forest.model"]},
    }})
    run_kedro(project, "airflow", "export", "--target-dir", str(tmp_path / "dags"))
    dag = load_exported_dag(tmp_path / "dags" / "consumer.py")
    assert "kedro://wine_classifier/random_forest.model" in repr(dag.timetable.asset_condition)


def test_invalid_cron_is_an_export_error_naming_file_and_key(tmp_path):
    project = relay_project(tmp_path, package="badcron",
                            extra_conf={"airflow.yml": {"default": {"schedule": "61 * * * *"}}})
    result = run_kedro(project, "airflow", "export", "--target-dir", str(tmp_path / "dags"),
                       check=False)
    _assert_clean_failure(result, "airflow.yml", "default.schedule", "not a valid cron")


def test_invalid_promotion_gate_is_an_export_error_naming_file_and_key(tmp_path):
    project = relay_project(tmp_path, package="badgate", extra_conf={"airflow.yml": {"default": {
        "promotion": {"registered_model": "m", "model": "m", "metric": "acc", "direction": "up"},
    }}})
    result = run_kedro(project, "airflow", "export", "--target-dir", str(tmp_path / "dags"),
                       check=False)
    _assert_clean_failure(result, "airflow.yml", "default.promotion.direction", "maximize")


def test_unversioned_dataset_shared_by_overlapping_runs_is_warned_about(tmp_path):
    """`summary` is written by one task and read by another: unversioned, two overlapping runs
    of the DAG would share it. The export warns, naming it; versioned, or one run at a time, not."""
    shared = {**RELAY_CATALOG, "summary": {"type": "json.JSONDataset",
                                           "filepath": "data/summary.json"}}
    project = relay_project(tmp_path, package="relay_shared", catalog=shared)
    result = run_kedro(project, "airflow", "export", "--target-dir", str(tmp_path / "dags"))
    warning = next(line for line in result.stderr.splitlines() if line.startswith("Warning: "))
    assert "dataset 'summary' is persisted but not versioned" in warning
    assert "written by task summarize and read by report" in warning
    assert "max_active_runs is not set" in warning

    one_at_a_time = relay_project(tmp_path / "serial", package="relay_serial", catalog=shared,
                                  extra_conf={"airflow.yml": {"default": {"max_active_runs": 1}}})
    quiet = run_kedro(one_at_a_time, "airflow", "export", "--target-dir", str(tmp_path / "dags"))
    assert "Warning: " not in quiet.stderr
    versioned = run_kedro(relay_project(tmp_path / "v", package="relay_v"), "airflow", "export",
                          "--target-dir", str(tmp_path / "dags"))
    assert "Warning: " not in versioned.stderr


CYCLE_NODES = '''
def make(value):
    return value, value


def middle(value):
    return value


def finish(in_memory, persisted):
    return in_memory + persisted
'''

CYCLE_REGISTRY = '''
from kedro.pipeline import Pipeline, node

from {package}.nodes import finish, make, middle


def register_pipelines():
    return {{"__default__": Pipeline([
        node(make, "params:value", ["kept_in_memory", "saved_first"], name="make"),
        node(middle, "saved_first", "saved_second", name="middle"),
        node(finish, ["kept_in_memory", "saved_second"], "result", name="finish"),
    ])}}
'''


def test_group_by_namespace_runs_a_namespace_per_task_with_a_doc_line_per_node(tmp_path):
    project = copy_example(tmp_path / "wine_classifier")
    run_kedro(project, "airflow", "export", "--group-by", "namespace", "--target-dir",
              str(tmp_path / "dags"))
    dag = load_exported_dag(tmp_path / "dags" / "wine_classifier.py")
    nodes = {t.task_id: t for t in dag.tasks if t.task_type == "KedroNodeOperator"}
    assert set(nodes) == {"data_processing", "random_forest", "logistic_regression"}
    assert nodes["random_forest"].node_names == (
        "random_forest.train_model", "random_forest.evaluate_model")
    assert nodes["random_forest"].upstream_task_ids == {"data_processing"}
    assert "Kedro node `random_forest.train_model`" in nodes["random_forest"].doc_md
    assert "Kedro node `random_forest.evaluate_model`" in nodes["random_forest"].doc_md
    # the training data crosses from one group to the others through the intermediate store
    assert "X_train" in nodes["random_forest"].intermediate_inputs
    assert "X_train" in nodes["data_processing"].intermediate_outputs


def test_group_by_memory_that_would_close_a_cycle_names_it(tmp_path):
    project = write_project(
        tmp_path, "cyclic", CYCLE_NODES, CYCLE_REGISTRY, parameters={"value": 1},
        catalog={name: {"type": "json.JSONDataset", "filepath": f"data/{name}.json"}
                 for name in ("saved_first", "saved_second", "result")},
    )
    target = tmp_path / "dags"
    result = run_kedro(project, "airflow", "export", "--group-by", "memory", "--target-dir",
                       str(target), check=False)
    _assert_clean_failure(result, "--group-by memory", "cycle", "middle", "make_finish")
    assert not target.exists() or not os.listdir(target)
    # without grouping the same pipeline exports fine
    run_kedro(project, "airflow", "export", "--target-dir", str(target))


def test_invalid_group_by_in_airflow_yml_names_file_and_key(tmp_path):
    project = relay_project(tmp_path, package="badgroup",
                            extra_conf={"airflow.yml": {"default": {"group_by": "size"}}})
    result = run_kedro(project, "airflow", "export", "--target-dir", str(tmp_path / "dags"),
                       check=False)
    _assert_clean_failure(result, "airflow.yml", "default.group_by", "memory, namespace")


def test_output_is_the_result_alone_and_check_says_what_it_checked(relay, tmp_path):
    result = run_kedro(relay, "airflow", "export", "--target-dir", str(tmp_path / "dags"),
                       "--check")
    # Kedro's CLI logs which logging config it uses before any command runs; nothing else
    output = re.split(r"as\s+logging\s+configuration\.[ ]*\n", result.stdout + result.stderr)[-1]
    assert output.splitlines()[0].split() == ["DAG", "file", "tasks", "edges", "status"], output
    assert output.splitlines()[1].split()[2] == "6", output  # as Airflow counts them, below too
    assert "Checked: Airflow's DagBag imports every DAG file with no error: relay_cli (6 tasks)." \
        in result.stdout
    assert "Kedro project" not in output and "INFO" not in output.upper()  # no log lines
    assert "Filling up the DagBag" not in output  # Airflow's, during --check
    verbose = run_kedro(relay, "airflow", "export", "--target-dir", str(tmp_path / "dags"), "-v",
                        "--check")
    assert "Filling up the DagBag" in verbose.stdout + verbose.stderr
    failed = run_kedro(relay, "airflow", "export", "-p", "nope", "--target-dir",
                       str(tmp_path / "dags"), check=False)
    after_kedro = re.split(r"as\s+logging\s+configuration\.[ ]*\n", failed.stdout)[-1]
    assert after_kedro.strip() == "" and len(failed.stderr.strip().splitlines()) == 1, failed


def test_comma_separated_pipelines_as_in_kedro_airflow(relay, tmp_path):
    run_kedro(relay, "airflow", "export", "--pipelines", "relay,__default__",
              "--target-dir", str(tmp_path / "dags"))
    assert sorted(os.listdir(tmp_path / "dags")) == ["relay_cli.py", "relay_cli__relay.py"]


def test_tags_export_only_the_tagged_nodes_and_name_inputs_nothing_produces(tmp_path):
    catalog = {**RELAY_CATALOG,
               "evens": {"type": "json.JSONDataset", "filepath": "data/evens.json"},
               "odds": {"type": "json.JSONDataset", "filepath": "data/odds.json"}}
    persisted = relay_project(tmp_path / "a", package="tagged", catalog=catalog)
    run_kedro(persisted, "airflow", "export", "--tags", "heavy", "--target-dir",
              str(tmp_path / "dags"))
    dag = load_exported_dag(tmp_path / "dags" / "tagged.py")
    assert {t.task_id for t in dag.tasks} == {"kedro_run_start", "summarize", "kedro_run_end"}

    in_memory = relay_project(tmp_path / "b", package="tagged_memory")  # evens, odds in memory
    result = run_kedro(in_memory, "airflow", "export", "--tags", "heavy", "--target-dir",
                       str(tmp_path / "dags"), check=False)
    _assert_clean_failure(result, "node 'summarize'", "reads 'evens'", "no node of the exported")
    result = run_kedro(persisted, "airflow", "export", "--tags", "nightly", "--target-dir",
                       str(tmp_path / "dags"), check=False)
    _assert_clean_failure(result, "no node of pipeline '__default__' has tag 'nightly'")


def test_params_override_airflow_yml_keys_and_unknown_ones_are_named(tmp_path):
    project = relay_project(tmp_path, package="overridden", extra_conf={"airflow.yml": {
        "default": {"retries": 1, "tags": ["a"]}}})
    run_kedro(project, "airflow", "export", "--params",
              "retries=3,catchup=true,start_date=2026-01-01,tags=[nightly, ml],schedule=@daily",
              "--target-dir", str(tmp_path / "dags"))
    dag = load_exported_dag(tmp_path / "dags" / "overridden.py")
    assert dag.catchup is True and {"nightly", "ml"} <= set(dag.tags)
    assert dag.get_task("report").retries == 3
    result = run_kedro(project, "airflow", "export", "--params", "retriez=3",
                       "--target-dir", str(tmp_path / "dags"), check=False)
    _assert_clean_failure(result, "--params: unknown key 'retriez'")
