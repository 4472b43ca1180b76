"""The ``kubernetes_pod`` execution mode: a node task's nodes in a pod of their own."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow_kedro_mlflow.operators.base import run_params
from airflow_kedro_mlflow.operators.node import KedroNodeOperator


class KedroNodePodOperator(KedroNodeOperator):
    """Runs a node task's nodes in a Kubernetes pod of their own (``image``), through the node
    runner, with the same semantics as in a worker.

    airflow.yml ``execution: {<tag>: {mode: kubernetes_pod, image: ..., project_path: ...}}``.
    The pod's environment takes Kubernetes ``secrets`` by name (``envFrom``), so the image's
    credentials.yml (``${oc.env:...}``) finds them; no value is in the DAG file. Parsing imports
    nothing of Kubernetes: the cncf-kubernetes provider's ``KubernetesPodOperator`` is built
    inside ``execute`` (this package's ``kubernetes`` extra).
    """

    ui_color = "#c6dbef"

    def __init__(
        self,
        *,
        image: str,
        project_path: str,
        namespace: str | None = None,
        secrets: Sequence[str] = (),
        env: dict[str, str] | None = None,
        container_resources: dict[str, Any] | None = None,
        node_selector: dict[str, str] | None = None,
        service_account_name: str | None = None,
        kubernetes_conn_id: str | None = None,
        image_pull_policy: str | None = None,
        python: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(python=python, **kwargs)
        self.image = image
        self.project_path = project_path
        self.namespace = namespace
        self.secrets = tuple(secrets)
        self.env = dict(env or {})
        self.container_resources = dict(container_resources or {})
        self.node_selector = dict(node_selector or {})
        self.service_account_name = service_account_name
        self.kubernetes_conn_id = kubernetes_conn_id
        self.image_pull_policy = image_pull_policy

    @property
    def isolated(self) -> bool:
        return True

    def pod_operator(self, context: Any, parent_run_id: str | None = None,
                     experiment_id: str | None = None) -> Any:
        """The ``KubernetesPodOperator`` this try runs (built, not run)."""
        from airflow_kedro_mlflow.runtime import launch
        from airflow_kedro_mlflow.runtime.pod import XCOM_RESULT_FILE, pod_operator

        self._invocation = launch.invocation_for(
            self, context, self.project_path, parent_run_id, experiment_id,
            run_params(context, self.param_defaults), result_file=XCOM_RESULT_FILE)
        return pod_operator(self, self._invocation)

    def _launch(self, context: Any, parent_run_id: str | None,
                experiment_id: str | None) -> tuple[dict[str, Any], str]:
        from airflow_kedro_mlflow.compat.airflow import executing_inside_task

        pod = self.pod_operator(context, parent_run_id, experiment_id)
        self._launcher = pod
        with executing_inside_task(pod):  # run by this task, not "outside the runner"
            result = pod.execute(context)  # raises when the pod fails
        result = dict(result) if isinstance(result, dict) else {}
        result.setdefault("exit_code", 0)
        return result, f"a pod of image {self.image}"
