"""What every operator of an exported DAG shares: the project it opens, the link to its MLflow
run, and the DAG run it runs for. Light: imported when a DAG file is parsed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator

from airflow_kedro_mlflow.config.project_ref import KedroProject
from airflow_kedro_mlflow.operators.links import MlflowRunLink

PARENT_XCOM_KEY = "mlflow_parent_run_id"
EXPERIMENT_XCOM_KEY = "mlflow_experiment_id"


class KedroProjectOperator(BaseOperator):
    """A task of an exported DAG: it opens ``project`` inside ``execute``."""

    template_fields: Sequence[str] = ()
    operator_extra_links = (MlflowRunLink(),)

    def __init__(self, *, project: KedroProject, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.project = project
        # The DAG's params as its file declares them, read now: when Airflow builds a task's
        # context it applies the run's conf to the DAG's Param objects in place, so afterwards
        # they hold the conf, not the defaults that ``run_params`` compares it with. The task's
        # own copy of the DAG's params goes: the task reads the DAG's at run time, and each
        # copy would be serialized and JSON-schema-validated at every parse of the DAG file.
        params: Any = self.params
        self.param_defaults = {key: params.get_param(key).value for key in params}
        self.params = type(params)()

    @property
    def step_name(self) -> str | None:
        """The name under which the end task reports this task's failure (``None``: not a step)."""
        return None


def run_identity(context: Any) -> Any:
    """The DAG run and try a task runs for (imported here: parsing a DAG never needs it)."""
    from airflow_kedro_mlflow.core.run_identity import RunIdentity

    return RunIdentity.from_context(context)


def stop_node_try() -> None:
    from airflow_kedro_mlflow.runtime.try_guard import request_stop

    request_stop("Airflow asked this try to stop (marked failed, cleared or timed out)")


def dag_run_state(ti: Any, dag_id: str) -> Any:
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


def run_params(context: Any, defaults: dict[str, Any]) -> dict[str, Any]:
    """What the DAG run's conf changes of the DAG's params (``defaults``, as the DAG file
    declares them): the runtime parameters tasks pass to Kedro (like ``kedro run --params``),
    see ``run_conf``."""
    from airflow_kedro_mlflow.config.run_conf import conf_of, overrides

    return overrides(conf_of(context["dag_run"]), defaults)


