"""The pod of a node task (the ``kubernetes_pod`` mode): a ``KubernetesPodOperator`` running the
node runner, built inside the launching task, never at parse time. Needs this package's
``kubernetes`` extra (``apache-airflow-providers-cncf-kubernetes``).
"""

from __future__ import annotations

from typing import Any

from airflow_kedro_mlflow.config.pod_spec import to_model
from airflow_kedro_mlflow.runtime.intermediate_key import runner_environment
from airflow_kedro_mlflow.runtime.invocation import NodeInvocation

XCOM_RESULT_FILE = "/airflow/xcom/return.json"
"""Where a pod's main container writes what the KubernetesPodOperator's sidecar returns."""


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
