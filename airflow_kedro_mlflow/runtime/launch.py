"""Launching a node task's node elsewhere: in another Python environment, or in a pod.

The launching task is an ordinary Airflow task; what only Airflow knows (the DAG run's identity,
the parent MLflow run from the start task, the conf's overrides, Connections the project's
config names, the DAG run's intermediate data key) becomes the node runner's command line and
environment, and the runner's result file comes back as the task's link and lineage. Light
module: imported by ``operators`` at execute time, it imports neither Kedro nor the project.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from airflow_kedro_mlflow.core.environment import without_airflow_secrets
from airflow_kedro_mlflow.core.errors import AirflowKedroError
from airflow_kedro_mlflow.runtime.intermediate_key import DEPLOYMENT_KEY_ENVS, runner_environment
from airflow_kedro_mlflow.runtime.invocation import EXIT_ABANDONED, NodeInvocation, read_result

_CONNECTION_REFERENCE = re.compile(r"\$\{\s*airflow_conn\s*:\s*([A-Za-z0-9_.-]+)")


class NodeRunnerError(AirflowKedroError):
    """The node runner failed, or could not be started."""


def invocation_for(operator: Any, context: Any, project_path: str,
                   parent_run_id: str | None, experiment_id: str | None,
                   params: dict[str, Any], result_file: str | None) -> NodeInvocation:
    """The runner's arguments for ``operator`` (a ``KedroNodeOperator``) in this task try."""
    from airflow_kedro_mlflow.runtime.lineage import openlineage_enabled

    dag_run, ti, project = context["dag_run"], context["ti"], operator.project
    return NodeInvocation(
        project_path=project_path,
        package_name=project.package_name,
        pipeline=project.pipeline,
        env=project.env,
        conf_source=project.conf_source,
        dag_id=dag_run.dag_id,
        run_id=dag_run.run_id,
        run_after=dag_run.run_after.isoformat(),
        try_number=getattr(ti, "try_number", 1) or 1,
        task_id=ti.task_id,
        node_names=operator.node_names,
        intermediate_inputs=operator.intermediate_inputs,
        intermediate_outputs=operator.intermediate_outputs,
        versioned_inputs=operator.versioned_inputs,
        parent_run_id=parent_run_id,
        experiment_id=experiment_id,
        params=params,
        result_file=result_file,
        lineage=openlineage_enabled(),
    )


def referenced_connections(project_root: Path, conf_source: str | None,
                           env: str | None = None) -> list[str]:
    """Ids of the Airflow Connections that the config of the tasks' env names
    (``${airflow_conn:<id>...}``): the YAML files of ``base`` and of ``env`` (Kedro's default run
    env ``local`` if none), their values only: other envs and comments hand nothing over."""
    import yaml

    conf = Path(project_root, conf_source) if conf_source else project_root / "conf"
    found: dict[str, None] = {}
    for folder in ("base", env or "local"):
        for path in sorted((conf / folder).rglob("*.y*ml")) if (conf / folder).is_dir() else []:
            try:
                content = yaml.safe_load(path.read_text())
            except (OSError, yaml.YAMLError):
                continue  # Kedro's own loader reports a broken file
            for text in _strings(content):
                for conn_id in _CONNECTION_REFERENCE.findall(text):
                    found[conn_id] = None
    return list(found)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def connection_environment(conn_ids: list[str]) -> dict[str, str]:
    """``AIRFLOW_CONN_<ID>`` (Airflow's JSON form) of each Connection, read through the Task SDK
    (secrets backends too; Airflow masks their secrets in this task's log), for the runner's
    ``${airflow_conn:...}``. A Connection Airflow does not know is left to the runner's error."""
    from airflow.sdk import Connection

    env = {}
    for conn_id in conn_ids:
        try:
            env[f"AIRFLOW_CONN_{conn_id.upper()}"] = Connection.get(conn_id).as_json()
        except Exception:
            continue
    return env


class PythonLauncher:
    """Runs the node runner with another interpreter on this worker, its output in the task log.

    ``stop`` (from ``on_kill``) passes Airflow's SIGTERM on: the runner stops before its next
    save. If this process dies instead, the runner finds itself orphaned and stops as well.
    """

    def __init__(self, python: str, log: Any) -> None:
        self.python = python
        self._log = log
        self._process: subprocess.Popen[str] | None = None

    def run(self, invocation: NodeInvocation, env: dict[str, str]) -> dict[str, Any]:
        """Run it; its result (child run, lineage); raise if the node failed."""
        if not Path(self.python).is_file() or not os.access(self.python, os.X_OK):
            raise NodeRunnerError(
                f"task '{invocation.task_id}': the interpreter {self.python} (airflow.yml "
                "execution: mode virtualenv, python) does not exist on this worker or is not "
                "executable"
            )
        with tempfile.TemporaryDirectory(prefix="akm-node-") as folder:
            result_file = str(Path(folder, "result.json"))
            command = _replace_result_file(invocation, result_file).command(self.python)
            self._log.info("Running node %s with %s", ", ".join(invocation.node_names), self.python)
            # The worker's environment less Airflow's secrets and other Connections than those
            # the project's config names (``env`` brings those)
            child_env = {**without_airflow_secrets(os.environ, connections=()), **env,
                         "PYTHONUNBUFFERED": "1"}
            child_env.pop("PYTHONPATH", None)  # this worker's paths are not the other env's
            for name in DEPLOYMENT_KEY_ENVS:  # the runner gets its run's key only
                child_env.pop(name, None)
            child_env.update(runner_environment(invocation.dag_id, invocation.run_id))
            self._process = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                env=child_env, cwd=invocation.project_path,
            )
            assert self._process.stdout is not None
            for line in self._process.stdout:
                self._log.info("%s", line.rstrip("\n"))
            code = self._process.wait()
            result = read_result(result_file)
        result["exit_code"] = code
        return result

    def stop(self) -> None:
        process = self._process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)


def check_result(invocation: NodeInvocation, result: dict[str, Any], where: str) -> None:
    """Raise unless the runner succeeded; the runner's own lines (above) tell why."""
    from airflow_kedro_mlflow.runtime.try_guard import TryAbandonedError

    code = result.get("exit_code")
    nodes = ", ".join(invocation.node_names)
    if code == 0:
        return
    if code == EXIT_ABANDONED:
        raise TryAbandonedError(f"task {invocation.task_id}: the node runner stopped ({where})")
    if isinstance(code, int) and code < 0:
        raise NodeRunnerError(
            f"Kedro node {nodes}: the node runner ({where}) was killed by signal {-code}")
    raise NodeRunnerError(
        f"Kedro node {nodes} failed in {where} (exit code {code}); its log is above")


def lineage_of(result: dict[str, Any]) -> Any:
    """The runner's lineage as the ``NodeLineage`` the OpenLineage hook reports."""
    from airflow_kedro_mlflow.runtime.lineage import LineageDataset, NodeLineage

    found = result.get("lineage")
    if not isinstance(found, dict):
        return None
    return NodeLineage(*(
        tuple(LineageDataset(namespace, name) for namespace, name in found.get(side, []))
        for side in ("inputs", "outputs")
    ))


def _replace_result_file(invocation: NodeInvocation, result_file: str) -> NodeInvocation:
    from dataclasses import replace

    return replace(invocation, result_file=result_file)

