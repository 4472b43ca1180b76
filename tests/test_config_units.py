"""airflow.yml, key by key, without a Kedro project: each key has an effect or is an error that
names the file and the key."""

from __future__ import annotations

from datetime import timedelta

import pytest

from airflow_kedro_mlflow.config.pipeline import settings_from_dict
from airflow_kedro_mlflow.core.errors import ConfigError
from airflow_kedro_mlflow.core.manifest import Manifest, NodeSpec
from airflow_kedro_mlflow.export.dagbag import load_dagbag
from airflow_kedro_mlflow.export.renderer import render_dag

SOURCE = "conf/base/airflow.yml"
PIPELINES = ["__default__", "training"]


def _settings(config: dict, pipeline: str = "__default__"):
    return settings_from_dict(config, pipeline, SOURCE, pipelines=PIPELINES)


@pytest.mark.parametrize("config, message", [
    ({"schedule": "@daily"}, "key 'schedule' is outside any block: put it under 'default'"),
    ({"trainng": {"retries": 1}}, "block 'trainng' names no pipeline of the project (pipelines: "
                                  "__default__, training"),
    ({"default": {"max_active_runs": 0}}, "key 'default.max_active_runs' must be a whole number "
                                          ">= 1, got 0"),
    ({"default": {"dag_id_suffix": "../x"}}, "key 'default.dag_id_suffix' may hold only letters"),
    ({"training": {"retriez": 1}}, "unknown key 'training.retriez' (known keys: "),
    ({"default": {"retries": -1}}, "key 'default.retries' must be a whole number >= 0, got -1"),
    ({"default": {"catchup": "yes"}}, "key 'default.catchup' must be true or false, got 'yes'"),
    ({"default": {"catchup": True}}, "key 'default.catchup' is true, which needs 'start_date'"),
    ({"default": {"execution_timeout": "soon"}}, "key 'default.execution_timeout' must be minutes"),
    ({"default": {"on_failure_callback": "notify"}}, "key 'default.on_failure_callback' must name "
                                                     "callables by import path"),
    ({"default": {"promotion": {"registered_model": "m", "model": "m"}}},
     "key 'default.promotion' lacks 'default.promotion.metric'"),
    ({"default": {"promotion": {"registered_model": "m", "model": "m", "metric": "a",
                                "direction": "up"}}},
     "key 'default.promotion.direction' is 'up'; use one of maximize, minimize"),
    ({"default": {"promotion": {"registered_model": "m", "model": "m", "metric": "a", "x": 1}}},
     "key 'default.promotion' has unknown key 'default.promotion.x'"),
    ({"default": {"execution": {"gpu": {"mode": "virtualenv"}}}},
     "key 'default.execution.gpu' has mode 'virtualenv', which needs 'python'"),
    ({"default": {"execution": {"gpu": {"mode": "vm"}}}},
     "key 'default.execution.gpu.mode' is 'vm'; use one of worker, virtualenv, kubernetes_pod"),
    ({"default": {"execution": {"gpu": {"mode": "kubernetes_pod", "image": "i"}}}},
     "key 'default.execution.gpu' has mode 'kubernetes_pod', which needs 'project_path'"),
    ({"default": {"execution": {"gpu": {"image": "i"}}}},
     "key 'default.execution.gpu' sets 'image', which only mode 'kubernetes_pod' takes"),
    ({"default": {"execution": {"gpu": {"python": "/p"}}}},
     "key 'default.execution.gpu' sets 'python', which only modes 'virtualenv' and"),
    ({"default": {"execution": {"gpu": {"imag": "i"}}}},
     "key 'default.execution.gpu' has unknown key 'default.execution.gpu.imag' (known: mode,"),
    ({"default": {"execution": {"gpu": {"mode": "kubernetes_pod", "image": "i", "project_path": "/p",
                                        "resources": {"limit": {"cpu": 1}}}}}},
     "key 'default.execution.gpu.resources.limit' is 'limit'; use one of requests, limits"),
    ({"default": {"execution": ["gpu"]}}, "key 'default.execution' must map Kedro node tags"),
    ({"default": {"intermediate_retention": -1}}, "key 'default.intermediate_retention' must be "
                                                  "days (a number) or a duration"),
    ({"training": {"intermediate_retention": "a week"}},
     "key 'training.intermediate_retention' must be days (a number) or a duration such as"),
])
def test_a_bad_key_is_one_line_naming_file_and_key(config, message):
    with pytest.raises(ConfigError) as caught:
        _settings(config)
    assert str(caught.value).startswith(f"{SOURCE}: "), caught.value
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("value, seconds", [(None, 7 * 86400), (2, 2 * 86400), ("12h", 43200),
                                            (0, 0)])
def test_intermediate_retention_is_days_or_a_duration_seven_days_by_default(value, seconds):
    block = {} if value is None else {"intermediate_retention": value}
    assert _settings({"default": block}).intermediate_retention.total_seconds() == seconds


def test_pipeline_block_overrides_default_key_by_key_and_params_come_last():
    config = {"default": {"retries": 1, "owner": "a", "promotion": {
        "registered_model": "m", "model": "m", "metric": "acc"}},
              "training": {"retries": 2, "promotion": None}}
    training = _settings(config, "training")
    assert (training.retries, training.owner, training.promotion) == (2, "a", None)
    assert _settings(config).promotion.metric == "acc"
    overridden = settings_from_dict(config, "__default__", SOURCE, {"promotion.metric": "f1"})
    assert overridden.promotion.metric == "f1" and overridden.promotion.model == "m"
    with pytest.raises(ConfigError, match="^--params: unknown key 'retriez'"):
        settings_from_dict(config, "__default__", SOURCE, {"retriez": 3})


def test_kedro_airflow_and_airflow_task_keys_reach_default_args():
    settings = _settings({"default": {
        "retry_delay": 5, "depends_on_past": True, "email": "ops@example.com",
        "email_on_failure": True, "email_on_retry": False, "retry_exponential_backoff": True,
        "max_retry_delay": "1h", "execution_timeout": "90s", "schedule_interval": "@hourly"}})
    assert settings.schedule == "@hourly"
    assert settings.default_args() == {
        "retry_delay": timedelta(seconds=300), "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(seconds=3600), "execution_timeout": timedelta(seconds=90),
        "depends_on_past": True, "email_on_failure": True, "email_on_retry": False,
        "email": ["ops@example.com"]}


def test_rendered_dag_carries_timeouts_limits_and_callbacks(tmp_path):
    settings = _settings({"default": {
        "max_active_tasks": 2, "dagrun_timeout": "2h", "execution_timeout": 30,
        "on_failure_callback": ["json.dumps"], "dag_on_failure_callback": "json.loads",
        "retries": 1, "retry_delay": "10s"}})
    node = NodeSpec(name="only", task_id="only", group=(), func="pkg.f", inputs=(), outputs=())
    manifest = Manifest(package_name="pkg", project_name="pkg", pipeline_name="__default__",
                        dag_id="pkg", env=None, nodes=(node,))
    (tmp_path / "pkg.py").write_text(render_dag(manifest, settings, "..", None))
    bag = load_dagbag(tmp_path)
    assert bag.import_errors == {}
    dag = bag.dags["pkg"]
    import json

    assert dag.max_active_tasks == 2 and dag.dagrun_timeout == timedelta(hours=2)
    assert dag.on_failure_callback == [json.loads]
    task = dag.get_task("only")
    assert task.execution_timeout == timedelta(minutes=30)
    assert task.on_failure_callback == [json.dumps]
    assert task.retry_delay == timedelta(seconds=10)


# --- mlflow.yml (kedro-mlflow 2's schema) ---------------------------------------------------

MLFLOW_SOURCE = "conf/base/mlflow.yml"


def _mlflow(config: dict):
    from pathlib import Path

    from airflow_kedro_mlflow.config.mlflow import settings_from_dict as mlflow_settings

    base = {"server": {"mlflow_tracking_uri": "http://127.0.0.1:5000"}}
    merged = {**base, **config}
    return mlflow_settings(merged, project_path=Path("/project"), pipeline_name="__default__",
                           package_name="pkg", source=MLFLOW_SOURCE, environ={})


@pytest.mark.parametrize("config, key", [
    ({"server": {"mlflow_tracking_uri": "http://x", "request_header_provider": {"type": "a.B"}}},
     "server.request_header_provider"),
    ({"tracking": {"run": {"id": "abc"}}}, "tracking.run.id"),
    ({"tracking": {"run": {"nested": False}}}, "tracking.run.nested"),
    ({"tracking": {"disable_tracking": {"disable_autologging": False}}},
     "tracking.disable_tracking.disable_autologging"),
    ({"tracking": {"params": {"dict_params": {"flatten": "yes"}}}},
     "tracking.params.dict_params.flatten"),
])
def test_kedro_mlflow_keys_a_dag_run_cannot_honour_are_refused_by_name(config, key):
    with pytest.raises(ConfigError, match=f"^{MLFLOW_SOURCE}: key '{key}' "):
        _mlflow(config)


class _Recorder:
    def __init__(self):
        self.params: dict = {}

    def log_batch(self, run_id, params=None, tags=None, metrics=None):
        self.params.update(params or {})


@pytest.mark.parametrize("dict_params, logged", [
    ({}, {"model.options.depth": "5", "seed": "1"}),  # unset: flattened
    ({"flatten": True, "sep": "/"}, {"model/options/depth": "5", "seed": "1"}),
    ({"flatten": True, "recursive": False}, {"model.options": "{'depth': 5}", "seed": "1"}),
    ({"flatten": False}, {"model": "{'options': {'depth': 5}}", "seed": "1"}),  # kedro-mlflow's
])
def test_dict_params_are_logged_as_mlflow_yml_says(dict_params, logged):
    from airflow_kedro_mlflow.runtime.tracking import Tracker

    tracker = Tracker(_mlflow({"tracking": {"params": {"dict_params": dict_params}}}))
    recorder = _Recorder()
    tracker.__dict__["client"] = recorder  # the run bookkeeping client, recorded
    tracker.log_params("run", {"model": {"options": {"depth": 5}}, "seed": 1})
    assert recorder.params == logged


def test_a_relative_sqlite_stores_artifacts_live_in_the_project_not_the_workers_cwd():
    from pathlib import Path

    from airflow_kedro_mlflow.config.mlflow import settings_from_dict as mlflow_settings

    settings = mlflow_settings({"server": {"mlflow_tracking_uri": "sqlite:///mlflow.db"}},
                               project_path=Path("/project"), pipeline_name="__default__",
                               package_name="pkg", source=MLFLOW_SOURCE, environ={})
    assert settings.tracking_uri == "sqlite:////project/mlflow.db"
    assert settings.artifact_location == "file:///project/mlruns"
    served = _mlflow({})  # a tracking server chooses (and may proxy) artifact storage itself
    assert served.artifact_location is None


class _Experiments:
    def __init__(self, stage: str):
        self.stage, self.restored = stage, []

    def get_experiment_by_name(self, name):
        from airflow_kedro_mlflow.runtime.mlflow_rest import Experiment

        return Experiment("7", self.stage)

    def restore_experiment(self, experiment_id):
        self.restored.append(experiment_id)


@pytest.mark.parametrize("restore", [True, False])
def test_a_deleted_experiment_is_restored_only_if_mlflow_yml_allows(restore):
    from airflow_kedro_mlflow.runtime.tracking import Tracker

    tracker = Tracker(_mlflow({"tracking": {"experiment": {"name": "wine",
                                                           "restore_if_deleted": restore}}}))
    client = tracker.__dict__["client"] = _Experiments("deleted")
    if restore:
        assert tracker.experiment_id() == "7" and client.restored == ["7"]
    else:
        with pytest.raises(ConfigError, match="experiment 'wine' is deleted and key "
                                              "'tracking.experiment.restore_if_deleted' is false"):
            tracker.experiment_id()
        assert client.restored == []


@pytest.mark.parametrize("dag_params", [True, False])
def test_dag_params_can_be_left_out_of_a_very_large_dag(tmp_path, dag_params):
    settings = _settings({"default": {"dag_params": dag_params}})
    node = NodeSpec(name="only", task_id="only", group=(), func="pkg.f", inputs=("params:n",),
                    outputs=())
    manifest = Manifest(package_name="pkg", project_name="pkg", pipeline_name="__default__",
                        dag_id="pkg", env=None, nodes=(node,), parameters=(("n", 3),))
    (tmp_path / "pkg.py").write_text(render_dag(manifest, settings, "..", None))
    dag = load_dagbag(tmp_path).dags["pkg"]
    assert dict(dag.params) == ({"n": 3} if dag_params else {})


@pytest.mark.parametrize("config, message", [
    ({"tracking": {"experimnt": {}}}, "unknown key 'tracking.experimnt' (known: disable_tracking, "
                                      "experiment, params, run)"),
    ({"tracking": {"run": {"name": 3}}}, "key 'tracking.run.name' must be str, got int"),
    ({"tracking": {"params": {"long_params_strategy": "drop"}}},
     "key 'tracking.params.long_params_strategy' must be one of fail, truncate, tag"),
    ({"tracking": "none"}, "key 'tracking' must be a mapping, got str"),
])
def test_mlflow_yml_is_checked_by_typed_models_naming_file_and_key(config, message):
    with pytest.raises(ConfigError) as caught:
        _mlflow(config)
    assert str(caught.value) == f"{MLFLOW_SOURCE}: {message}"


def test_null_mlflow_yml_keys_take_their_defaults():
    settings = _mlflow({"tracking": {"run": None, "params": {"dict_params": None}}, "ui": {"port": 5001}})
    assert settings.file.tracking.params.dict_params.flatten and settings.file.tracking.run.name is None


def test_execution_settings_route_node_tasks_by_their_first_configured_tag(tmp_path):
    settings = _settings({"default": {"execution": {
        "legacy": {"mode": "virtualenv", "python": "/opt/legacy/bin/python"},
        "gpu": {"mode": "kubernetes_pod", "image": "reg/img:1", "project_path": "/app",
                "secrets": ["s3-creds"], "node_selector": {"gpu": "a100"}},
        "big": {"executor": "LocalExecutor"}}}})
    nodes = tuple(NodeSpec(name=n, task_id=n, group=(), func="pkg.f", inputs=(), outputs=(),
                           tags=tags)
                  for n, tags in (("old", ("legacy", "gpu")), ("train", ("gpu",)),
                                  ("fit", ("big",)), ("plain", ())))
    manifest = Manifest(package_name="pkg", project_name="pkg", pipeline_name="__default__",
                        dag_id="pkg", env=None, nodes=nodes)
    source = render_dag(manifest, settings, "..", None)
    assert "s3-creds" in source and "kubernetes" not in source.split("with DAG(")[0]
    (tmp_path / "pkg.py").write_text(source)
    bag = load_dagbag(tmp_path)
    assert bag.import_errors == {}
    dag = bag.dags["pkg"]
    assert dag.get_task("old").python == "/opt/legacy/bin/python"
    assert type(dag.get_task("old")).__name__ == "KedroNodeVirtualenvOperator"
    assert dag.get_task("old").isolated and not dag.get_task("plain").isolated
    # a DAG file exported before the virtualenv mode had its own class still runs it there
    from airflow_kedro_mlflow.operators import KedroNodeOperator

    legacy = KedroNodeOperator(task_id="legacy", node_name="old", python="/opt/legacy/bin/python",
                               project=dag.get_task("old").project)
    assert legacy.isolated and legacy.python == "/opt/legacy/bin/python"
    train = dag.get_task("train")
    assert type(train).__name__ == "KedroNodePodOperator"
    assert (train.image, train.project_path, train.secrets) == ("reg/img:1", "/app", ("s3-creds",))
    assert train.node_selector == {"gpu": "a100"}
    assert dag.get_task("fit").executor == "LocalExecutor" and dag.get_task("fit").python is None
    assert dag.get_task("plain").python is None and dag.get_task("plain").executor is None
