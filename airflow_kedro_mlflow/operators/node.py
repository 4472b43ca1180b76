"""Node tasks: one Kedro node (or a group) of the DAG run, in this worker's task process, or
through the node runner in another environment (the subclasses of ``virtualenv`` and
``kubernetes``: one class per execution mode, on this one)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow_kedro_mlflow.core.ids import START_TASK_ID
from airflow_kedro_mlflow.operators.base import (
    EXPERIMENT_XCOM_KEY,
    PARENT_XCOM_KEY,
    KedroProjectOperator,
    run_identity,
    run_params,
    stop_node_try,
)
from airflow_kedro_mlflow.operators.links import RUN_URL_XCOM_KEY


class KedroNodeOperator(KedroProjectOperator):
    """Runs one Kedro node, or several grouped ones (``node_names``), in a Kedro session of the
    DAG run.

    The other execution modes are its subclasses (``KedroNodeVirtualenvOperator``,
    ``KedroNodePodOperator``), which launch the node runner; this class does too when given
    ``python``, as DAG files exported before the virtualenv mode had its own class are.
    """

    ui_color = "#ffc900"

    def __init__(
        self,
        *,
        node_name: str | None = None,
        node_names: Sequence[str] = (),
        intermediate_inputs: Sequence[str] = (),
        intermediate_outputs: Sequence[str] = (),
        versioned_inputs: Sequence[str] = (),
        python: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.python = python
        self.node_names = tuple(node_names) or ((node_name,) if node_name else ())
        if not self.node_names:
            raise ValueError(f"task '{self.task_id}': KedroNodeOperator needs node_name or node_names")
        self.node_name = self.node_names[0]
        self.intermediate_inputs = tuple(intermediate_inputs)
        self.intermediate_outputs = tuple(intermediate_outputs)
        self.versioned_inputs = tuple(versioned_inputs)

    @property
    def step_name(self) -> str:
        return ",".join(self.node_names)

    def on_kill(self) -> None:
        """SIGTERM from Airflow: stop before the next save instead of finishing the node."""
        stop_node_try()
        launcher = getattr(self, "_launcher", None)  # the node runner's process, or its pod
        if launcher is not None:
            (getattr(launcher, "stop", None) or launcher.on_kill)()

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """The catalog datasets the nodes read and wrote, for Airflow's OpenLineage provider."""
        from airflow_kedro_mlflow.runtime.lineage import operator_lineage

        return operator_lineage(getattr(self, "_lineage", None))

    @property
    def isolated(self) -> bool:
        """Whether the node runs in a process of the node runner rather than in this one."""
        return self.python is not None

    def execute(self, context: Any) -> None:
        if self.isolated:
            return self._execute_isolated(context)
        from airflow_kedro_mlflow.runtime.node_run import NodeTask, run_node

        task = NodeTask(
            node_names=self.node_names,
            intermediate_inputs=self.intermediate_inputs,
            intermediate_outputs=self.intermediate_outputs,
            versioned_inputs=self.versioned_inputs,
        )
        ti = context["ti"]
        parent_run_id = ti.xcom_pull(task_ids=START_TASK_ID, key=PARENT_XCOM_KEY)
        linked = []

        def push_link(run_id: str, url: str | None) -> None:
            ti.xcom_push(key=RUN_URL_XCOM_KEY, value=url)
            linked.append(url)

        try:
            run_node(
                self.project,
                task,
                run_identity(context),
                run_params(context, self.param_defaults),
                parent_run_id=parent_run_id,
                experiment_id=(
                    ti.xcom_pull(task_ids=START_TASK_ID, key=EXPERIMENT_XCOM_KEY)
                    if parent_run_id
                    else None
                ),
                on_tracked=push_link,
                on_lineage=lambda lineage: setattr(self, "_lineage", lineage),
            )
        finally:
            if not linked:  # untracked: the link reads "no run", not a missing XCom (an error line)
                ti.xcom_push(key=RUN_URL_XCOM_KEY, value=None)

    def _execute_isolated(self, context: Any) -> None:
        from airflow_kedro_mlflow.runtime import launch

        ti = context["ti"]
        parent_run_id = ti.xcom_pull(task_ids=START_TASK_ID, key=PARENT_XCOM_KEY)
        experiment_id = (ti.xcom_pull(task_ids=START_TASK_ID, key=EXPERIMENT_XCOM_KEY)
                         if parent_run_id else None)
        result: dict[str, Any] = {}
        try:
            result, where = self._launch(context, parent_run_id, experiment_id)
        finally:  # the link (or "no run") also when the launch failed: no missing-XCom error line
            ti.xcom_push(key=RUN_URL_XCOM_KEY, value=result.get("mlflow_run_url"))
        self._lineage = launch.lineage_of(result)
        launch.check_result(self._invocation, result, where)

    def _launch(self, context: Any, parent_run_id: str | None,
                experiment_id: str | None) -> tuple[dict[str, Any], str]:
        """Run the node runner in the other environment: (its result, where it ran)."""
        from airflow_kedro_mlflow.runtime import launch

        root = self.project.locate()
        self._invocation = launch.invocation_for(
            self, context, str(root), parent_run_id, experiment_id,
            run_params(context, self.param_defaults), result_file=None)
        self._launcher = launch.PythonLauncher(str(self.python), self.log)
        env = launch.connection_environment(
            launch.referenced_connections(root, self.project.conf_source, self.project.env))
        return self._launcher.run(self._invocation, env), f"python {self.python}"
