"""Kubernetes for node tasks: ``pod_override`` objects for DAG files, and the pod of a node.

``airflow.yml`` holds pods as plain data (Kubernetes' own YAML keys); Airflow needs them as the
Kubernetes client's models: an ``executor_config`` ``pod_override`` must be a ``V1Pod`` when the
DAG is serialized, so a DAG file that sets one calls ``pod_override`` at parse time (the only
DAGs that import the Kubernetes client when parsed, as Airflow's serializer would anyway). The
pod mode's ``KubernetesPodOperator`` is built inside the launching task, never at parse time.
Needs this package's ``kubernetes`` extra (``apache-airflow-providers-cncf-kubernetes``).
"""

from __future__ import annotations

from typing import Any

from airflow_kedro_mlflow.compat.kubernetes import deserialize
from airflow_kedro_mlflow.errors import ConfigError
from airflow_kedro_mlflow.node_runner import NodeInvocation
from airflow_kedro_mlflow.runtime.intermediate_key import runner_environment

XCOM_RESULT_FILE = "/airflow/xcom/return.json"
"""Where a pod's main container writes what the KubernetesPodOperator's sidecar returns."""


def pod_override(spec: dict[str, Any]) -> Any:
    """``spec`` (a pod as YAML data: ``{spec: {containers: [{name: base, ...}]}}``) as a
    ``V1Pod``; a key the Kubernetes API does not know is an error, not silently dropped."""
    return to_model(spec, "V1Pod", "executor_config.pod_override")


def to_model(data: dict[str, Any], kind: str, where: str) -> Any:
    model, kept = deserialize(data, kind)
    dropped = _dropped_key(data, kept)
    if dropped:
        raise ConfigError(f"sets {where}.{dropped}, which is not a field of a Kubernetes {kind[2:]}")
    return model


def _dropped_key(given: Any, kept: Any, path: str = "") -> str | None:
    if isinstance(given, dict):
        kept = kept if isinstance(kept, dict) else {}
        for key, value in given.items():
            where = f"{path}.{key}" if path else str(key)
            if key not in kept and value is not None:
                return where
            found = _dropped_key(value, kept.get(key), where)
            if found:
                return found
    elif isinstance(given, list) and isinstance(kept, list):
        for index, (value, other) in enumerate(zip(given, kept, strict=False)):
            found = _dropped_key(value, other, f"{path}[{index}]")
            if found:
                return found
    return None


def pod_operator(operator: Any, invocation: NodeInvocation) -> Any:
    """The ``KubernetesPodOperator`` that runs ``invocation`` in a pod for ``operator`` (a
    ``KedroNodePodOperator``): the image's Python runs the node runner; the pod's environment
    takes the Secrets by name (``envFrom``), never their values."""
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
    from airflow.providers.cncf.kubernetes.secret import Secret

    command = invocation.command(operator.python or "python")
    resources = (to_model(dict(operator.container_resources), "V1ResourceRequirements",
                          f"task '{operator.task_id}' resources")
                 if operator.container_resources else None)
    optional = {
        key: value for key, value in {
            "namespace": operator.namespace,
            "service_account_name": operator.service_account_name,
            "image_pull_policy": operator.image_pull_policy,
            "kubernetes_conn_id": operator.kubernetes_conn_id,
            "node_selector": dict(operator.node_selector) or None,
            "container_resources": resources,
        }.items() if value
    }
    return KubernetesPodOperator(
        task_id=operator.task_id,
        name=f"kedro-{operator.task_id.replace('_', '-').replace('.', '-')}"[:50],
        image=operator.image,
        cmds=command[:1],
        arguments=command[1:],
        # the DAG run's key (for this run only, masked in the task log); never the deployment's
        env_vars={**dict(operator.env), "PYTHONUNBUFFERED": "1",
                  **runner_environment(invocation.dag_id, invocation.run_id)},
        secrets=[Secret("env", None, name) for name in operator.secrets],
        do_xcom_push=True,
        get_logs=True,
        on_finish_action="delete_pod",
        **optional,
    )
