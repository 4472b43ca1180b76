"""The promotion gate of a retraining DAG: register the run's model, move the alias only if better.

A nightly retraining must never replace a better production model with a worse one, and must
leave a record of why it did or did not. So every run's model becomes a registry version (it can
be inspected or promoted by hand later), the alias (``champion``) moves only when the run's metric
beats the current holder's, and the decision with both values is tagged on the DAG run's parent
run and on the new model version. Rerunning the task for the same DAG run reuses the version it
registered before instead of registering another.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from airflow_kedro_mlflow.config import PromotionSettings
from airflow_kedro_mlflow.errors import ConfigError
from airflow_kedro_mlflow.project_ref import KedroProject
from airflow_kedro_mlflow.run_identity import RunIdentity
from airflow_kedro_mlflow.runtime.task_runtime import TaskRuntime
from airflow_kedro_mlflow.runtime.tracking import Tracker

log = logging.getLogger(__name__)

TAG_PREFIX = "promotion."


@dataclass(frozen=True)
class PromotionDecision:
    """What the gate decided, and on which values; tagged as ``promotion.*``."""

    promoted: bool
    reason: str
    registered_model: str
    version: str
    alias: str
    metric: str
    candidate_value: float
    champion_version: str | None = None
    champion_value: float | None = None

    def tags(self) -> dict[str, str]:
        values = {
            "decision": "promoted" if self.promoted else "not_promoted",
            "reason": self.reason,
            "registered_model": self.registered_model,
            "model_version": self.version,
            "alias": self.alias,
            "metric": self.metric,
            "candidate_value": repr(self.candidate_value),
            "champion_version": self.champion_version,
            "champion_value": None if self.champion_value is None else repr(self.champion_value),
        }
        return {TAG_PREFIX + key: value for key, value in values.items() if value is not None}


def beats(candidate: float, champion: float, direction: str) -> bool:
    """Strictly better: a tie keeps the current champion (no churn without a gain)."""
    return candidate > champion if direction == "maximize" else candidate < champion


def promote_model(
    project: KedroProject, run: RunIdentity, parent_run_id: str | None, gate: PromotionSettings
) -> PromotionDecision:
    """Register the DAG run's model and move the alias if it beats the holder's metric."""
    runtime = TaskRuntime.open(project, run)
    tracker = runtime.tracker
    if tracker is None or parent_run_id is None:
        raise ConfigError(
            f"airflow.yml 'promotion' of pipeline '{project.pipeline}' needs MLflow tracking, "
            "but it is off for this pipeline (mlflow.yml)"
        )
    decision = decide(tracker, parent_run_id, gate)
    tracker.client.log_batch(parent_run_id, tags=_run_tags(decision.tags()))
    log.info(
        "Model '%s' version %s: %s (%s)",
        decision.registered_model,
        decision.version,
        "promoted to @" + decision.alias if decision.promoted else "not promoted",
        decision.reason,
    )
    return decision


def decide(tracker: Tracker, parent_run_id: str, gate: PromotionSettings) -> PromotionDecision:
    client = tracker.client
    parent = client.get_run(parent_run_id)
    metrics = parent.data.metrics
    if gate.metric not in metrics:
        raise ConfigError(
            f"airflow.yml key 'promotion.metric': MLflow run {parent_run_id} has no metric "
            f"'{gate.metric}' (its metrics: {', '.join(sorted(metrics)) or 'none'})"
        )
    candidate = float(metrics[gate.metric])
    version = _registered_version(tracker, parent, gate)
    champion = _alias_holder(client, gate)
    common = {
        "registered_model": gate.registered_model,
        "version": str(version.version),
        "alias": gate.alias,
        "metric": gate.metric,
        "candidate_value": candidate,
    }
    already_champion = champion is not None and str(champion.version) == str(version.version)
    if champion is None:
        promoted, reason, champion_value = True, f"no version held @{gate.alias}", None
    elif already_champion:
        promoted, reason, champion_value = True, f"already @{gate.alias}", candidate
    else:
        champion_value = _run_metric(client, champion.run_id, gate.metric)
        if champion_value is None:
            promoted = True
            reason = f"version {champion.version} @{gate.alias} has no {gate.metric}"
        else:
            promoted = beats(candidate, champion_value, gate.direction)
            relation = "beats" if promoted else "does not beat"
            reason = (
                f"{gate.metric} {candidate:g} {relation} {champion_value:g} of version "
                f"{champion.version} ({gate.direction})"
            )
    if promoted and not already_champion:
        client.set_registered_model_alias(gate.registered_model, gate.alias, str(version.version))
    decision = PromotionDecision(
        promoted=promoted,
        reason=reason,
        champion_version=None if champion is None else str(champion.version),
        champion_value=champion_value,
        **common,
    )
    for key, value in decision.tags().items():
        client.set_model_version_tag(gate.registered_model, str(version.version), key, value)
    return decision


def _registered_version(tracker: Tracker, parent: Any, gate: PromotionSettings) -> Any:
    """This run's version of the registered model: found again on a rerun, else registered."""
    client = tracker.client
    run_id = parent.info.run_id
    existing = client.search_model_versions(
        f"name = '{_quote(gate.registered_model)}' and run_id = '{run_id}'"
    )
    if existing:
        return max(existing, key=lambda v: int(v.version))
    model = _logged_model(tracker, parent, gate)
    import mlflow

    return mlflow.register_model(
        f"models:/{model.model_id}",
        gate.registered_model,
        tags={"airflow.dag_id": parent.data.tags.get("airflow.dag_id", ""),
              "airflow.run_id": parent.data.tags.get("airflow.run_id", "")},
    )


def _logged_model(tracker: Tracker, parent: Any, gate: PromotionSettings) -> Any:
    """The newest model logged as ``gate.model`` in the run (a retried node may have logged two)."""
    import mlflow

    run_id = parent.info.run_id
    models = mlflow.search_logged_models(
        experiment_ids=[parent.info.experiment_id],
        filter_string=f"source_run_id = '{run_id}'",
        order_by=[{"field_name": "creation_timestamp", "ascending": False}],
        output_format="list",
    )
    named = [m for m in models if m.name == gate.model]
    if not named:
        names = sorted({m.name for m in models})
        raise ConfigError(
            f"airflow.yml key 'promotion.model': no model named '{gate.model}' was logged in "
            f"MLflow run {run_id} (models logged there: {', '.join(names) or 'none'}); log it "
            "with an airflow_kedro_mlflow.datasets.MlflowModelDataset whose 'name' is that"
        )
    return named[0]


def _alias_holder(client: Any, gate: PromotionSettings) -> Any | None:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(gate.registered_model, gate.alias)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise


def _run_metric(client: Any, run_id: str | None, metric: str) -> float | None:
    if not run_id:
        return None
    value = client.get_run(run_id).data.metrics.get(metric)
    return None if value is None else float(value)


def _run_tags(tags: dict[str, str]) -> list[Any]:
    from mlflow.entities import RunTag

    return [RunTag(key, value) for key, value in tags.items()]


def _quote(value: str) -> str:
    return value.replace("'", "\\'")
