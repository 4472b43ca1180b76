"""Operators of exported DAGs: a start task, one task per Kedro node, and an end task.

Imported by DAG files at parse time, so only ``airflow.sdk`` and light modules of this package are
imported here; Kedro, fsspec and the project are imported inside ``execute``.

The start task is a setup task and the end task its teardown: Airflow runs the end task whatever
the nodes' outcome, ignores it when computing the DAG run's state (a failed node fails the run), and
clears both along with any node task a user clears, so a rerun finishes the same DAG run properly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import Asset, AssetAlias, BaseOperator

from airflow_kedro_mlflow.config.project_ref import KedroProject
from airflow_kedro_mlflow.core.ids import PROMOTE_TASK_ID, START_TASK_ID, champion_asset_uri
from airflow_kedro_mlflow.core.run_outcome import OUTCOME_XCOM_KEY
from airflow_kedro_mlflow.operators.links import RUN_URL_XCOM_KEY, MlflowRunLink

PARENT_XCOM_KEY = "mlflow_parent_run_id"
EXPERIMENT_XCOM_KEY = "mlflow_experiment_id"

__all__ = [
    "KedroNodeOperator",
    "KedroNodePodOperator",
    "KedroProject",
    "KedroPromoteModelOperator",
    "KedroRunEndOperator",
    "KedroRunStartOperator",
]


class _KedroProjectOperator(BaseOperator):
    template_fields: Sequence[str] = ()
    operator_extra_links = (MlflowRunLink(),)

    def __init__(self, *, project: KedroProject, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.project = project

    @property
    def step_name(self) -> str | None:
        """The name under which the end task reports this task's failure (``None``: not a step)."""
        return None


class KedroNodeOperator(_KedroProjectOperator):
    """Runs one Kedro node, or several grouped ones (``node_names``), in a Kedro session of the
    DAG run.

    With ``python`` (airflow.yml ``execution: {<tag>: {mode: virtualenv, python: ...}}``) the
    node runs in that interpreter's environment on this worker, through the node runner
    (``python -m airflow_kedro_mlflow.node_runner``), with the same semantics.
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
        _stop_node_try()
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
                _run_identity(context),
                run_params(context, self.dag),
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
            run_params(context, self.dag), result_file=None)
        self._launcher = launch.PythonLauncher(str(self.python), self.log)
        env = launch.connection_environment(
            launch.referenced_connections(root, self.project.conf_source, self.project.env))
        return self._launcher.run(self._invocation, env), f"python {self.python}"


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
            run_params(context, self.dag), result_file=XCOM_RESULT_FILE)
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


def _run_identity(context: Any) -> Any:
    """The DAG run and try a task runs for (imported here: parsing a DAG never needs it)."""
    from airflow_kedro_mlflow.core.run_identity import RunIdentity

    return RunIdentity.from_context(context)


def _stop_node_try() -> None:
    from airflow_kedro_mlflow.runtime.try_guard import request_stop

    request_stop("Airflow asked this try to stop (marked failed, cleared or timed out)")


def _dag_run_state(ti: Any, dag_id: str) -> Any:
    """``run_id -> state`` of the DAG's other runs, as Airflow knows them (``None``: no such run,
    as the execution API's typed not-found says; ``"unknown"``: cannot tell, so that run's MLflow
    parent is left alone). See ``runtime.dag_run_lookup`` for what the Task SDK raises."""
    from airflow_kedro_mlflow.runtime.dag_run_lookup import (
        UNKNOWN,
        can_ask_about,
        is_dag_run_not_found,
    )

    def state(run_id: str) -> str | None:
        if not can_ask_about(dag_id, run_id):  # the SDK would ask about another URL
            return UNKNOWN
        try:
            value = ti.get_dagrun_state(dag_id=dag_id, run_id=run_id)
        except Exception as exc:
            return None if is_dag_run_not_found(exc) else UNKNOWN
        return str(getattr(value, "value", value))

    return state


def run_params(context: Any, dag: Any) -> dict[str, Any]:
    """What the DAG run's conf changes of the DAG's ``params``: the runtime parameters tasks
    pass to Kedro (like ``kedro run --params``), see ``run_conf``."""
    from airflow_kedro_mlflow.config.run_conf import conf_of, overrides

    params: Any = getattr(dag, "params", None)
    defaults = {key: params.get_param(key).value for key in params} if params else {}
    return overrides(conf_of(context["dag_run"]), defaults)


class KedroRunStartOperator(_KedroProjectOperator):
    """Opens the DAG run's MLflow parent run and the project, as node tasks will (setup task)."""

    ui_color = "#c7e9c0"

    @property
    def step_name(self) -> str:
        return self.task_id

    def execute(self, context: Any) -> None:
        from airflow_kedro_mlflow.runtime.dag_run import start_run

        run = _run_identity(context)
        tracked = start_run(
            self.project, run, run_params(context, self.dag),
            _dag_run_state(context["ti"], run.dag_id),
            gate_reruns=self._gate_reruns(context["ti"], run),
        )
        # Pushed untracked too (as None): the other tasks then read "no run", not a missing XCom,
        # which Airflow logs as an error in every task.
        ti = context["ti"]
        ti.xcom_push(key=PARENT_XCOM_KEY, value=tracked.run_id if tracked else None)
        ti.xcom_push(key=EXPERIMENT_XCOM_KEY, value=tracked.experiment_id if tracked else None)
        ti.xcom_push(key=RUN_URL_XCOM_KEY, value=tracked.url if tracked else None)


    def _gate_reruns(self, ti: Any, run: Any) -> bool:
        """Whether this attempt of the DAG run runs its promotion gate (if it has one): not when
        a task was cleared without it, whose last verdict then stands."""
        if not any(isinstance(t, KedroPromoteModelOperator) for t in self.dag.tasks):
            return False
        states = ti.get_task_states(dag_id=run.dag_id, run_ids=[run.run_id]).get(run.run_id, {})
        return str(states.get(PROMOTE_TASK_ID)) not in _FINISHED_STATES


_FINISHED_STATES = frozenset({"success", "failed", "skipped", "upstream_failed", "removed"})


class KedroPromoteModelOperator(_KedroProjectOperator):
    """The promotion gate: registers the run's model and moves the alias only if it is better.

    Configured by ``promotion:`` in airflow.yml; runs after the last nodes, before the end task.
    Returns (as XCom) the decision: whether it promoted, the version and both metric values.
    When the alias moves, it emits an event of the Asset ``models:/<registered_model>@<alias>``
    (through an AssetAlias: no event when it does not move), so DAGs that serve the champion,
    scheduled on that Asset, run exactly when there is a new champion.
    """

    ui_color = "#fdd0a2"

    def __init__(
        self,
        *,
        registered_model: str,
        model: str,
        metric: str,
        direction: str = "maximize",
        alias: str = "champion",
        **kwargs: Any,
    ) -> None:
        # One gate at a time per DAG: two concurrent runs that both beat the champion must not
        # both move the alias, the second unaware of the first.
        kwargs.setdefault("max_active_tis_per_dag", 1)
        self.champion_asset_uri = champion_asset_uri(registered_model, alias)
        kwargs.setdefault("outlets", [AssetAlias(self.champion_asset_uri)])
        super().__init__(**kwargs)
        self.registered_model = registered_model
        self.model = model
        self.metric = metric
        self.direction = direction
        self.alias = alias

    @property
    def step_name(self) -> str:
        return self.task_id

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow_kedro_mlflow.config.pipeline import PromotionSettings
        from airflow_kedro_mlflow.runtime.promotion import promote_model

        ti = context["ti"]
        parent_run_id = ti.xcom_pull(task_ids=START_TASK_ID, key=PARENT_XCOM_KEY)
        gate = PromotionSettings(
            registered_model=self.registered_model,
            model=self.model,
            metric=self.metric,
            direction=self.direction,
            alias=self.alias,
        )
        decision = promote_model(self.project, _run_identity(context), parent_run_id, gate)
        ti.xcom_push(key=RUN_URL_XCOM_KEY, value=ti.xcom_pull(task_ids=START_TASK_ID, key=RUN_URL_XCOM_KEY))
        if decision.moved:
            context["outlet_events"][AssetAlias(self.champion_asset_uri)].add(
                Asset(self.champion_asset_uri),
                extra={"model_version": decision.version, "mlflow_run_id": parent_run_id},
            )
        return decision.tags()


class KedroRunEndOperator(_KedroProjectOperator):
    """Closes the DAG run: final MLflow status, end record and expiry of intermediate data
    (teardown task).

    It runs once every other task is done, whatever their outcome, the start task's included: a
    DAG run whose start task failed after it opened the parent run still closes that run. As a
    teardown it does not decide the DAG run's state. It is the normal path, not the only one:
    whatever Airflow does that this task does not see (a clear of only the failed tasks, a run
    or task marked by hand, this task killed), the parent-run listener (``listener.py``) settles
    the parent with the DAG run's state as Airflow sets it.
    """

    ui_color = "#c7e9c0"

    def as_teardown(self, *args: Any, **kwargs: Any) -> Any:
        from airflow.sdk import TriggerRule

        teardown = super().as_teardown(*args, **kwargs)
        self.trigger_rule = TriggerRule.ALL_DONE  # also when the setup (start) task failed
        return teardown

    def execute(self, context: Any) -> None:
        from airflow_kedro_mlflow.runtime.dag_run import finish_run

        run = _run_identity(context)
        steps = {  # start, node tasks and the promotion gate: whose failure fails the run
            t.task_id: t.step_name
            for t in self.dag.tasks
            if isinstance(t, _KedroProjectOperator) and t.step_name
        }
        ti = context["ti"]
        states = ti.get_task_states(dag_id=run.dag_id, run_ids=[run.run_id])
        run_states = states.get(run.run_id, {})
        outcome, tracked = finish_run(
            self.project,
            run,
            {step: run_states.get(task_id) for task_id, step in steps.items()},
            parent_run_id=ti.xcom_pull(task_ids=START_TASK_ID, key=PARENT_XCOM_KEY),
        )
        ti.xcom_push(key=RUN_URL_XCOM_KEY, value=tracked.url if tracked else None)
        if tracked is not None:
            ti.xcom_push(key=OUTCOME_XCOM_KEY, value=outcome.as_record())
