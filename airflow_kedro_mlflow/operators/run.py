"""The DAG run's own tasks: the start (setup) task that opens the MLflow parent run, the end
(teardown) task that settles it, and the promotion gate."""

from __future__ import annotations

import contextlib
from typing import Any

from airflow.sdk import Asset, AssetAlias

from airflow_kedro_mlflow.core.ids import PROMOTE_TASK_ID, START_TASK_ID, champion_asset_uri
from airflow_kedro_mlflow.core.run_outcome import OUTCOME_XCOM_KEY
from airflow_kedro_mlflow.operators.base import (
    EXPERIMENT_XCOM_KEY,
    PARENT_XCOM_KEY,
    KedroProjectOperator,
    dag_run_state,
    run_identity,
    run_params,
)
from airflow_kedro_mlflow.operators.links import RUN_URL_XCOM_KEY


class KedroRunStartOperator(KedroProjectOperator):
    """Opens the DAG run's MLflow parent run and the project, as node tasks will (setup task)."""

    ui_color = "#c7e9c0"

    @property
    def step_name(self) -> str:
        return self.task_id

    def execute(self, context: Any) -> None:
        from airflow_kedro_mlflow.runtime.dag_run import start_run

        run = run_identity(context)
        ti = context["ti"]
        try:
            tracked = start_run(
                self.project, run, run_params(context, self.param_defaults),
                dag_run_state(ti, run.dag_id),
                gate_reruns=self._gate_reruns(ti, run),
            )
        except Exception:
            # the task's "MLflow run" link then reads "no run": not a missing XCom, which
            # Airflow logs as an error line after the task's own, clear one
            with contextlib.suppress(Exception):
                ti.xcom_push(key=RUN_URL_XCOM_KEY, value=None)
            raise
        # Pushed untracked too (as None): the other tasks then read "no run", not a missing XCom,
        # which Airflow logs as an error in every task.
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


class KedroPromoteModelOperator(KedroProjectOperator):
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
        from airflow_kedro_mlflow.config.airflow_yml import Promotion
        from airflow_kedro_mlflow.runtime.promotion import promote_model

        ti = context["ti"]
        parent_run_id = ti.xcom_pull(task_ids=START_TASK_ID, key=PARENT_XCOM_KEY)
        gate = Promotion.model_validate({
            "registered_model": self.registered_model, "model": self.model,
            "metric": self.metric, "direction": self.direction, "alias": self.alias})
        decision = promote_model(self.project, run_identity(context), parent_run_id, gate)
        ti.xcom_push(key=RUN_URL_XCOM_KEY, value=ti.xcom_pull(task_ids=START_TASK_ID, key=RUN_URL_XCOM_KEY))
        if decision.moved:
            context["outlet_events"][AssetAlias(self.champion_asset_uri)].add(
                Asset(self.champion_asset_uri),
                extra={"model_version": decision.version, "mlflow_run_id": parent_run_id},
            )
        return decision.tags()


class KedroRunEndOperator(KedroProjectOperator):
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

        run = run_identity(context)
        steps = {  # start, node tasks and the promotion gate: whose failure fails the run
            t.task_id: t.step_name
            for t in self.dag.tasks
            if isinstance(t, KedroProjectOperator) and t.step_name
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
