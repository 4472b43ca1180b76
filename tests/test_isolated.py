"""Nodes routed by tag to another Python environment (``mode: virtualenv``) and to a Kubernetes pod
(``mode: kubernetes_pod``), and the node runner both use, run for real with ``dag.test()``.

The pod mode has no cluster here: its DAG is parsed, the pod its task would create is built by
the cncf-kubernetes provider and validated by the Kubernetes client's models, and the exact
command of the pod's container is run in the second environment, as the pod would run it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml
from conftest import REPO, run_dag, run_kedro, with_kubernetes
from kedro_projects import WHERE_NODES, where_project

pytestmark = pytest.mark.slow

def _mlflow_runs(url: str, experiment: str) -> tuple[list, list]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(url)
    found = client.get_experiment_by_name(experiment)
    runs = client.search_runs([found.experiment_id], max_results=100)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    return parents, [r for r in runs if "mlflow.parentRunId" in r.data.tags]


def test_virtualenv_node_runs_in_the_other_interpreter_in_one_mlflow_run(
        airflow_db, workspace, node_python, mlflow_server):
    experiment = f"where-{uuid.uuid4().hex[:8]}"
    project = where_project(workspace, {"mode": "virtualenv", "python": str(node_python)},
                            mlflow_server, experiment)
    run_kedro(project, "airflow", "export", "--target-dir", str(workspace / "dags"))
    dag_file = workspace / "dags" / "where.py"
    assert "python=" in dag_file.read_text()

    result = run_dag(dag_file, "where")
    assert result.state == "success", result.output[-5000:]
    report = json.loads((project / "data" / "report.json").read_text())
    assert report["ran_in"] == str(node_python.parent.parent)  # the node env's sys.prefix
    assert report["reporter"] == sys.prefix and report["total"] == 10
    assert len(list((project / "data" / "where.json").iterdir())) == 1  # one save version
    assert f"Running node locate with {node_python}" in result.output

    (parent,), children = _mlflow_runs(mlflow_server, experiment)
    assert parent.info.status == "FINISHED"
    assert sorted(c.data.tags["kedro.node"] for c in children) == ["locate", "make_numbers",
                                                                   "report"]
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    assert {c.info.status for c in children} == {"FINISHED"}
    locate_link = result.xcoms["locate"]["mlflow_run_url"]
    assert [c for c in children if c.data.tags["kedro.node"] == "locate"][0].info.run_id in locate_link


def test_a_failing_node_and_a_missing_interpreter_are_errors_naming_them(tmp_path, node_python):
    """What a virtualenv task raises (the launcher, without an Airflow run): the node's own
    error in the log it streams, then one naming node and interpreter."""
    from airflow_kedro_mlflow.runtime.invocation import NodeInvocation
    from airflow_kedro_mlflow.runtime.launch import NodeRunnerError, PythonLauncher, check_result

    project = where_project(tmp_path, {"mode": "virtualenv", "python": str(node_python)})
    (project / "src" / "where" / "nodes.py").write_text(WHERE_NODES.replace(
        "    return list(range(count))", '    raise ValueError("no place like home")'))
    invocation = NodeInvocation(project_path=str(project), pipeline="__default__", dag_id="where",
                                run_id="manual__1", run_after="2026-12-01T10:00:00+00:00",
                                task_id="make_numbers", node_names=("make_numbers",))
    lines: list[str] = []

    class Log:
        def info(self, message: str, *args: object) -> None:
            lines.append(message % args)

    result = PythonLauncher(str(node_python), Log()).run(invocation, {})
    with pytest.raises(NodeRunnerError, match=f"Kedro node make_numbers failed in python "
                                              f"{node_python} \\(exit code 1\\)"):
        check_result(invocation, result, f"python {node_python}")
    assert any("no place like home" in line for line in lines)
    with pytest.raises(NodeRunnerError, match="the interpreter /nowhere/bin/python .* does not "
                                              "exist on this worker"):
        PythonLauncher("/nowhere/bin/python", Log()).run(invocation, {})


def test_the_node_runner_runs_a_node_from_a_shell(tmp_path, node_python):
    """``python -m airflow_kedro_mlflow.node_runner`` with the identity of a DAG run: the node's
    versioned output is saved under that run's save version, in the other environment."""
    from airflow_kedro_mlflow.core.run_identity import save_version_for

    project = where_project(tmp_path, {"mode": "virtualenv", "python": str(node_python)})
    (project / "data" / "airflow_intermediate").mkdir(parents=True)
    run_after = "2026-12-01T10:00:00+00:00"
    base = [str(node_python), "-m", "airflow_kedro_mlflow.node_runner", "--project", str(project),
            "--dag-id", "where", "--run-id", "manual__1", "--run-after", run_after]
    # by hand, the runner signs and checks intermediate data with the deployment's key
    keyed = {**os.environ, "AIRFLOW_KEDRO_MLFLOW_INTERMEDIATE_KEY": f"by-hand-{uuid.uuid4().hex}"}
    first = subprocess.run([*base, "--task-id", "make_numbers", "--node", "make_numbers",
                            "--intermediate-output", "numbers"], capture_output=True, text=True,
                           env=keyed)
    assert first.returncode == 0, first.stderr
    unkeyed = subprocess.run([*base, "--task-id", "locate", "--node", "locate",
                              "--intermediate-input", "numbers"], capture_output=True, text=True)
    assert unkeyed.returncode == 1
    assert "no key to authenticate intermediate data" in unkeyed.stderr
    assert keyed["AIRFLOW_KEDRO_MLFLOW_INTERMEDIATE_KEY"] not in first.stderr + unkeyed.stderr
    second = subprocess.run([*base, "--task-id", "locate", "--node", "locate",
                             "--intermediate-input", "numbers", "--result-file",
                             str(tmp_path / "result.json")], capture_output=True, text=True,
                            env=keyed)
    assert second.returncode == 0, second.stderr
    from datetime import datetime

    version = save_version_for(datetime.fromisoformat(run_after), "where", "manual__1")
    saved = json.loads((project / "data" / "where.json" / version / "where.json").read_text())
    assert saved["prefix"] == str(node_python.parent.parent) and saved["total"] == 10
    assert json.loads((tmp_path / "result.json").read_text())["python"] == str(node_python)

    unknown = subprocess.run([*base, "--task-id", "x", "--node", "nope"], capture_output=True,
                             text=True)
    assert unknown.returncode == 1 and "nope" in unknown.stderr


POD = {"mode": "kubernetes_pod", "image": "registry.example.com/where:1.0",
       "namespace": "ml", "secrets": ["where-s3"], "env": {"WHERE_ENV": "pod"},
       "resources": {"limits": {"memory": "2Gi", "cpu": "1"}},
       "node_selector": {"pool": "training"}}


def test_pod_mode_dag_parses_without_kubernetes_and_its_pod_command_runs(
        airflow_db, workspace, node_python):
    project = where_project(workspace, {**POD, "project_path": str(workspace / "where")})
    run_kedro(project, "airflow", "export", "--target-dir", str(workspace / "dags"))
    dag_file = workspace / "dags" / "where.py"
    source = dag_file.read_text()
    assert "KedroNodePodOperator(" in source and "where-s3" in source

    probe = subprocess.run([sys.executable, "-c", f"""
import sys
from airflow_kedro_mlflow.export.dagbag import load_dagbag
bag = load_dagbag(__import__('pathlib').Path({str(dag_file)!r}))
assert not bag.import_errors, bag.import_errors
# Airflow's provider discovery reads the provider's info module; nothing else of it may load
heavy = [m for m in sys.modules if m.split('.')[0] in ('kubernetes', 'kubernetes_asyncio', 'kedro')
         or m.startswith(('airflow.providers.cncf.kubernetes.operators',
                          'airflow.providers.cncf.kubernetes.pod_generator'))]
print('HEAVY', heavy)
"""], capture_output=True, text=True, env=with_kubernetes())
    assert probe.returncode == 0, probe.stderr[-3000:]
    assert "HEAVY []" in probe.stdout

    # dag.test() with the cluster replaced by this machine: the pod the provider would create is
    # validated, then its container's command runs in the node environment (tests/pod_stand_in.py)
    env = with_kubernetes({**os.environ, "AKM_POD_STAND_IN_PATH": str(node_python.parent),
                           "PYTHONPATH": str(REPO / "tests"), "AKM_POD_STAND_IN": "1"})
    result = run_dag(dag_file, "where", env=env)
    assert result.state == "success", result.output[result.output.find("locate"):][:20000]
    pod = json.loads(result.output.split("POD_SPEC ", 1)[1].splitlines()[0])
    container, sidecar = pod["spec"]["containers"]  # the node runner, the xcom sidecar
    assert sidecar["name"] == "airflow-xcom-sidecar"
    assert container["image"] == POD["image"] and pod["metadata"]["namespace"] == "ml"
    assert container["command"] == ["python"]
    assert container["args"][:2] == ["-m", "airflow_kedro_mlflow.node_runner"]
    assert {"secretRef": {"name": "where-s3"}} in container["envFrom"]
    assert container["resources"]["limits"] == {"memory": "2Gi", "cpu": "1"}
    assert pod["spec"]["nodeSelector"] == {"pool": "training"}
    report = json.loads((project / "data" / "report.json").read_text())
    assert report["ran_in"] == str(node_python.parent.parent)


def test_executor_and_pod_override_are_rendered_as_plain_data(workspace):
    execution = {"executor": "KubernetesExecutor", "executor_config": {"pod_override": {
        "spec": {"containers": [{"name": "base", "resources": {"limits": {"memory": "8Gi"}}}]}}}}
    project = where_project(workspace, execution)
    run_kedro(project, "airflow", "export", "--target-dir", str(workspace / "dags"),
              env=with_kubernetes())
    source = (workspace / "dags" / "where.py").read_text()
    assert "executor='KubernetesExecutor'" in source and "pod_override({'spec'" in source

    probe = subprocess.run([sys.executable, "-c", f"""
from airflow_kedro_mlflow.export.dagbag import load_dagbag
bag = load_dagbag(__import__('pathlib').Path({str(workspace / "dags" / "where.py")!r}))
assert not bag.import_errors, bag.import_errors
locate, report = bag.dags["where"].get_task("locate"), bag.dags["where"].get_task("report")
pod = locate.executor_config["pod_override"]
print("PARSED", locate.executor, type(pod).__name__, pod.spec.containers[0].resources.limits,
      report.executor)
"""], capture_output=True, text=True,
        env=with_kubernetes({**os.environ,
                             "AIRFLOW__CORE__EXECUTOR": "LocalExecutor,KubernetesExecutor"}))
    assert probe.returncode == 0, probe.stderr[-3000:]
    assert "PARSED KubernetesExecutor V1Pod {'memory': '8Gi'} None" in probe.stdout

    bad = yaml.safe_load(yaml.safe_dump(execution))
    bad["executor_config"]["pod_override"]["spec"]["containerz"] = []
    (project / "conf" / "base" / "airflow.yml").write_text(
        yaml.safe_dump({"default": {"execution": {"isolated": bad}}}))
    failed = run_kedro(project, "airflow", "export", "--target-dir", str(workspace / "dags"),
                       check=False, env=with_kubernetes())
    assert failed.returncode != 0
    assert "spec.containerz" in failed.stdout + failed.stderr


def test_a_connection_the_config_names_reaches_the_virtualenv_node_masked(airflow_db, workspace,
                                                                           node_python):
    """credentials.yml names an Airflow Connection kept in the metadata DB (not in any env
    variable): the launching task reads it and hands it to the runner, which has no Airflow;
    the node prints it, and the task log shows it masked."""
    secret = f"conn-secret-{uuid.uuid4().hex}"
    conn_id = f"where_{uuid.uuid4().hex[:6]}"
    airflow = str(Path(sys.executable).with_name("airflow"))
    subprocess.run([airflow, "connections", "add", conn_id, "--conn-type", "http",
                    "--conn-host", "where.example.com", "--conn-password", secret],
                   check=True, capture_output=True)
    try:
        project = where_project(workspace, {"mode": "virtualenv", "python": str(node_python)})
        (project / "conf" / "local" / "credentials.yml").write_text(yaml.safe_dump(
            {"where_api": {"token": f"${{airflow_conn:{conn_id},password}}"}}))
        (project / "src" / "where" / "nodes.py").write_text(WHERE_NODES.replace(
            '    return {"executable"',
            f'    import os\n    print("connection:", os.environ["AIRFLOW_CONN_{conn_id.upper()}"])\n'
            '    print("airflow secrets:", sorted(k for k in os.environ if k.startswith('
            '("AIRFLOW__DATABASE", "AIRFLOW_CONN_"))))\n'
            '    return {"executable"'))
        run_kedro(project, "airflow", "export", "--target-dir", str(workspace / "dags"))
        result = run_dag(workspace / "dags" / "where.py", "where")
    finally:
        subprocess.run([airflow, "connections", "delete", conn_id], capture_output=True)
    assert result.state == "success", result.output[-5000:]
    assert "connection: {" in result.output and "where.example.com" in result.output
    # only the Connection the config names: not the worker's metadata-DB URL, no other one
    assert f"airflow secrets: ['AIRFLOW_CONN_{conn_id.upper()}']" in result.output
    assert secret not in result.output and secret not in (workspace / "dags" / "where.py").read_text()


def test_the_node_runner_masks_the_credentials_it_reads_in_all_it_prints(tmp_path, node_python):
    """Outside Airflow no masker is there: the runner redacts every secret of credentials.yml
    from its output, a node's own print and a traceback included."""
    secret = f"runner-secret-{uuid.uuid4().hex}"
    project = where_project(tmp_path, {"mode": "virtualenv", "python": str(node_python)})
    (project / "conf" / "local" / "credentials.yml").write_text(yaml.safe_dump(
        {"where_api": {"token": "${oc.env:WHERE_TOKEN}", "endpoint_url": "http://where.local"}}))
    (project / "src" / "where" / "nodes.py").write_text(WHERE_NODES.replace(
        "def make_numbers(count: int) -> list[int]:\n",
        "def make_numbers(count: int) -> list[int]:\n"
        "    import os\n    print('token is', os.environ['WHERE_TOKEN'])\n"
        "    raise RuntimeError('failed with ' + os.environ['WHERE_TOKEN'])\n"))
    done = subprocess.run(
        [str(node_python), "-m", "airflow_kedro_mlflow.node_runner", "--project", str(project),
         "--dag-id", "where", "--run-id", "manual__1", "--run-after", "2026-12-01T10:00:00+00:00",
         "--task-id", "make_numbers", "--node", "make_numbers"],
        capture_output=True, text=True, env={**os.environ, "WHERE_TOKEN": secret})
    output = done.stdout + done.stderr
    assert done.returncode == 1
    assert "token is ***" in output and "failed with ***" in output
    assert secret not in output
