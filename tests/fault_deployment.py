"""The fault deployment shared by the fault and operator-action tests: the example's `s3` env,
retrying each task, with a Kedro hook that injects faults (``fault_injection.py``) at real lines
of real task processes, on one LocalExecutor deployment (PostgreSQL, scheduler, dag-processor,
api-server) with its own ``mlflow server`` (one the tests can stop) and S3 on loopback; beside it
a small project whose middle node runs in another virtualenv, with the same hook.

Registered as a pytest plugin by conftest.py; session-scoped, so the modules that use it (one
xdist group, one worker) share one deployment.
"""


from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest
import yaml
from airflow_cluster import AirflowCluster, airflow_cluster
from conftest import REPO, copy_example, run_kedro, running_mlflow_server
from kedro_projects import where_project

INTERMEDIATE_KEY_ENV = "AIRFLOW_KEDRO_MLFLOW_INTERMEDIATE_KEY"
INTERMEDIATE_KEY = f"fault-deployment-{uuid.uuid4().hex}"
GROUP = "fault-deployment"
"""The xdist group of every module on this deployment (scripts/test.sh: --dist loadgroup)."""
BUCKET = "wine-classifier"
TRAINING = "wine_classifier_s3"
INFERENCE = "wine_classifier__inference_s3"
REGISTERED = "wine_classifier_s3"
FOREST_TRAIN = "random_forest.train_model"
SPLIT = "data_processing.split_data"
MODEL_DATASET = "random_forest.model"
WHERE = "where"
# A forest of one depth-1 tree: a model clearly worse than the configured one.
WORSE = {"random_forest": {"model_options": {
    "estimator": "random_forest", "n_estimators": 1, "max_depth": 1, "random_state": 42}}}


class Faults:
    """The deployment's fault list (read by the hook in every task) and the markers it leaves."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.file = folder / "faults.json"
        self.file.write_text("[]")

    def add(self, **fault) -> dict:
        fault.setdefault("id", uuid.uuid4().hex[:8])
        faults = json.loads(self.file.read_text())
        self.file.write_text(json.dumps([*faults, fault]))
        return fault

    def fired(self, fault: dict) -> list[int]:
        return sorted(int(p.name.split(".try")[1].split(".")[0])
                      for p in self.folder.glob(f"{fault['id']}.try*.fired"))

    def wait_fired(self, fault: dict, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while not self.fired(fault):
            assert time.monotonic() < deadline, f"fault {fault} did not fire in {timeout}s"
            time.sleep(0.5)


@pytest.fixture(scope="session")
def faulty(tmp_path_factory, s3_server, node_python):
    """The example's `s3` env, retrying each task, with the fault hook, on its own MLflow server
    (one this module can stop) and one LocalExecutor deployment; beside it a small project whose
    middle node runs in another virtualenv, with the same hook."""
    root = tmp_path_factory.mktemp("faults")
    key, secret = f"key{uuid.uuid4().hex}", f"secret{uuid.uuid4().hex}"
    s3_server.ensure_bucket(BUCKET, key, secret)
    project = copy_example(root / "examples" / "wine_classifier")
    _add_fault_hook(project, "wine_classifier", env="s3", retries=3)
    run_kedro(project, "airflow", "export", "-e", "s3", "-p", "__default__", "-p", "inference",
              "--target-dir", str(root / "dags"))
    faults = Faults(root)
    with running_mlflow_server(root / "mlflow") as mlflow:
        where = where_project(root / "examples", {"mode": "virtualenv", "python": str(node_python)},
                              mlflow.url, WHERE)
        _add_fault_hook(where, "where", retries=2)
        run_kedro(where, "airflow", "export", "--target-dir", str(root / "dags"))
        env = {
            "WINE_S3_KEY": key, "WINE_S3_SECRET": secret, "WINE_S3_ENDPOINT_URL": s3_server.url,
            "MLFLOW_TRACKING_URI": mlflow.url, "AKM_FAULTS": str(faults.file),
            # Set on the workers, so the tests can read the intermediate data the tasks sign
            INTERMEDIATE_KEY_ENV: INTERMEDIATE_KEY,
            # A dead supervisor is noticed after 20 s instead of 5 minutes.
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "20",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
            # MLflow's client gives up on an unreachable server after seconds, not minutes: the
            # outage below outlasts the client's retry window either way.
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
            "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0",
        }
        with airflow_cluster(root / "airflow", root / "dags", "LocalExecutor",
                             extra_env=env) as airflow:
            airflow.wait_for_dag(INFERENCE)
            airflow.api("PATCH", f"/dags/{INFERENCE}", {"is_paused": False})
            yield Deployment(airflow, mlflow, faults, s3_server, project,
                             {"key": key, "secret": secret,
                              "client_kwargs": {"endpoint_url": s3_server.url}})


def _add_fault_hook(project: Path, package: str, retries: int, env: str = "base") -> None:
    """The fault hook in the project's settings, and retries for every task."""
    source = project / "src" / package
    (source / "fault_injection.py").write_text((REPO / "tests" / "fault_injection.py").read_text())
    with open(source / "settings.py", "a") as settings:
        settings.write(f"\nfrom {package}.fault_injection import FaultInjection\n\n"
                       "HOOKS = (FaultInjection(),)\n")
    airflow_yml = project / "conf" / env / "airflow.yml"
    config = yaml.safe_load(airflow_yml.read_text())
    config["default"].update({"retries": retries, "retry_delay": "5s"})
    airflow_yml.write_text(yaml.safe_dump(config))


PARENT_STATUS = {"success": "FINISHED", "failed": "FAILED", "running": "RUNNING",
                 "queued": "RUNNING"}


class Deployment:
    def __init__(self, airflow: AirflowCluster, mlflow, faults: Faults, s3, project: Path,
                 s3_options: dict) -> None:
        self.airflow, self.mlflow, self.faults, self.s3 = airflow, mlflow, faults, s3
        self.project = project
        """The deployed copy of the example project (its conf can be edited between runs)."""
        self.s3_options = s3_options

    def intermediate(self, run_id: str, dataset: str):
        """What the DAG run's intermediate store holds for ``dataset``, read as a task reads it."""
        import os
        from datetime import UTC, datetime

        from airflow_kedro_mlflow.core.run_identity import RunIdentity
        from airflow_kedro_mlflow.runtime.intermediate import IntermediateStore

        os.environ[INTERMEDIATE_KEY_ENV] = INTERMEDIATE_KEY
        try:
            store = IntermediateStore(f"s3://{BUCKET}/airflow-intermediate",
                                      RunIdentity(TRAINING, run_id, datetime.now(UTC)),
                                      self.s3_options)
            return store.dataset(dataset).load()
        finally:
            os.environ.pop(INTERMEDIATE_KEY_ENV, None)

    def settled(self, run_id: str, timeout: float = 30) -> tuple[dict, object]:
        """The DAG run and its one parent once the parent's status is the DAG run's state,
        polled for at most ``timeout`` seconds: what a user sees in both UIs."""
        deadline = time.monotonic() + timeout
        while True:
            run = self.airflow.api("GET", f"/dags/{TRAINING}/dagRuns/{run_id}")
            (parent,) = self.parents(run_id)
            if parent.info.status == PARENT_STATUS[run["state"]]:
                return run, parent
            assert time.monotonic() < deadline, (
                f"DAG run {run_id} is {run['state']} but its MLflow parent is "
                f"{parent.info.status} after {timeout}s ({parent.data.tags})\n"
                + self.settling_log(run_id))
            time.sleep(1)

    def settling_log(self, run_id: str) -> str:
        """What the components' parent-run listeners did for ``run_id`` and when its tasks
        ended: the story a failed ``settled`` needs told (CI keeps no component logs)."""
        lines = []
        for name in ("api-server", "scheduler"):
            log = self.airflow.home / f"{name}.log"
            for line in log.read_text(errors="replace").splitlines() if log.exists() else []:
                if run_id in line and any(word in line for word in (
                        "parent run of DAG run", "settle", "TaskInstance Finished",
                        "DagRun Finished", "PATCH", "clearTaskInstances")):
                    lines.append(f"{name}: {line[:400]}")
        return "\n".join(lines[-60:])

    @property
    def client(self):
        import mlflow
        from mlflow.tracking import MlflowClient

        mlflow.set_tracking_uri(self.mlflow.url)
        return MlflowClient(self.mlflow.url)

    def parents(self, run_id: str) -> list:
        experiment = self.client.get_experiment_by_name(TRAINING)
        return self.client.search_runs(
            [experiment.experiment_id],
            f"tags.`airflow_kedro_mlflow.role` = 'parent' and tags.`airflow.run_id` = '{run_id}'",
            order_by=["attributes.start_time ASC"])

    def children(self, parent, task_id: str | None = None) -> list:
        query = f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'"
        if task_id:
            query += f" and tags.`airflow.task_id` = '{task_id}'"
        runs = self.client.search_runs([parent.info.experiment_id], query)
        return sorted(runs, key=lambda r: int(r.data.tags["airflow.try_number"]))

    def promoted_model_id(self, parent) -> str:
        version = self.client.get_model_version(REGISTERED, parent.data.tags["promotion.model_version"])
        assert version.run_id == parent.info.run_id
        return version.source.removeprefix("models:/")  # registered from the logged model

    def model_of_try(self, parent, child) -> str:
        models = self.client.search_logged_models(
            experiment_ids=[parent.info.experiment_id],
            filter_string=f"source_run_id = '{parent.info.run_id}'")
        (model,) = [m for m in models
                    if m.tags.get("airflow_kedro_mlflow.node_run_id") == child.info.run_id]
        return model.model_id

    def model_versions_on_s3(self, parent) -> list[str]:
        version = parent.data.tags["kedro.save_version"]
        return [k for k in self.s3.keys(BUCKET, "data/06_models/random_forest/model.pkl/")
                if f"/{version}/" in k]

    def succeed(self, run_id: str) -> tuple[dict, list]:
        """The DAG run succeeded, with exactly one FINISHED parent; returns (run, tasks)."""
        run = self.airflow.wait(TRAINING, run_id)
        tasks = self.airflow.task_instances(TRAINING, run_id)
        assert run["state"] == "success", [(t["task_id"], t["state"], t["try_number"]) for t in tasks]
        (parent,) = self.parents(run_id)
        assert parent.info.status == "FINISHED"
        assert "kedro.failed_nodes" not in parent.data.tags
        return run, tasks


def new_run_id(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:6]}"


def try_number(tasks: list, task_id: str) -> int:
    return next(t["try_number"] for t in tasks if t["task_id"] == task_id)


def hand_made_champion(client, accuracy: float) -> str:
    """A registered version holding @champion whose run scored ``accuracy``: the model in
    production before the run under test (a constant classifier)."""
    import mlflow
    import mlflow.sklearn
    from sklearn.dummy import DummyClassifier

    experiment = mlflow.set_experiment(TRAINING)  # made if no DAG run has tracked here yet
    with mlflow.start_run(experiment_id=experiment.experiment_id, run_name="hand-made champion"):
        mlflow.log_metric("random_forest.accuracy", accuracy)
        info = mlflow.sklearn.log_model(DummyClassifier().fit([[0.0]], [0]), name="random_forest")
    version = mlflow.register_model(info.model_uri, REGISTERED)
    client.set_registered_model_alias(REGISTERED, "champion", version.version)
    return str(version.version)
