"""The promotion gate of a retraining DAG: register the run's model, move the alias only if better.

A nightly retraining must never replace a better production model with a worse one, and must
leave a record of why it did or did not. So every run's model becomes a registry version (it can
be inspected or promoted by hand later), the alias (``champion``) moves only when the run's metric
beats the current holder's, and the decision with both values is tagged on the DAG run's parent
run and on the new model version. Rerunning the gate for the same DAG run reuses the version it
registered for the same model. A cleared DAG run retrains: its new model is registered and judged
against the champion from before that DAG run, and the alias ends where this attempt's decision
puts it. Only a model logged by a node try that succeeded is ever registered.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from airflow_kedro_mlflow.config.airflow_yml import Promotion
from airflow_kedro_mlflow.config.project_ref import KedroProject
from airflow_kedro_mlflow.core.errors import ConfigError
from airflow_kedro_mlflow.core.run_identity import RunIdentity
from airflow_kedro_mlflow.runtime.task_runtime import TaskRuntime
from airflow_kedro_mlflow.runtime.tracking import TAG_NODE_RUN, TAG_PROMOTION_PREFIX, Tracker

log = logging.getLogger(__name__)

TAG_PREFIX = TAG_PROMOTION_PREFIX


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
    moved: bool = False
    """Whether this decision moved the alias (a new champion), not just kept it."""

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
    project: KedroProject, run: RunIdentity, parent_run_id: str | None, gate: Promotion
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
    tracker.mlflow_client.log_batch(parent_run_id, tags=_run_tags(decision.tags()))
    log.info(
        "Model '%s' version %s: %s (%s)",
        decision.registered_model,
        decision.version,
        "promoted to @" + decision.alias if decision.promoted else "not promoted",
        decision.reason,
    )
    return decision


def decide(tracker: Tracker, parent_run_id: str, gate: Promotion) -> PromotionDecision:
    client = tracker.mlflow_client
    parent = client.get_run(parent_run_id)
    metrics = parent.data.metrics
    if gate.metric not in metrics:
        raise ConfigError(
            f"airflow.yml key 'promotion.metric': MLflow run {parent_run_id} has no metric "
            f"'{gate.metric}' (its metrics: {', '.join(sorted(metrics)) or 'none'})"
        )
    candidate = float(metrics[gate.metric])
    model = _logged_model(tracker, parent, gate)
    version = _registered_version(client, parent, model, gate)
    holder = _alias_holder(client, gate)
    champion = holder
    if holder is not None and holder.run_id == parent_run_id:
        # An earlier attempt of this same DAG run (before a clear) holds the alias: judge this
        # attempt against the champion it replaced, as if the earlier attempt had not happened.
        champion = _model_version(client, gate, holder.tags.get(TAG_PREFIX + "champion_version"))
    common: dict[str, Any] = {
        "registered_model": gate.registered_model,
        "version": str(version.version),
        "alias": gate.alias,
        "metric": gate.metric,
        "candidate_value": candidate,
    }
    if champion is None:
        promoted, reason, champion_value = True, f"no version held @{gate.alias}", None
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
    holder_version = None if holder is None else str(holder.version)
    target = str(version.version) if promoted else (None if champion is None else str(champion.version))
    if target is not None and target != holder_version:
        client.set_registered_model_alias(gate.registered_model, gate.alias, target)
    decision = PromotionDecision(
        promoted=promoted,
        reason=reason,
        champion_version=None if champion is None else str(champion.version),
        champion_value=champion_value,
        moved=promoted and target != holder_version,
        **common,
    )
    for key, value in decision.tags().items():
        client.set_model_version_tag(gate.registered_model, str(version.version), key, value)
    if holder is not None and holder.run_id == parent_run_id and holder_version != str(version.version):
        client.set_model_version_tag(
            gate.registered_model, holder_version, TAG_PREFIX + "superseded_by", str(version.version)
        )
    return decision


def _registered_version(client: Any, parent: Any, model: Any, gate: Promotion) -> Any:
    """The registry version of ``model``: found again when the gate reruns, else registered.

    Looked up by the logged model, not by the run: a cleared DAG run logs a new model in the same
    run, and that one must be registered, not the earlier attempt's.
    """
    run_id = parent.info.run_id
    existing = [
        v
        for v in client.search_model_versions(
            f"name = '{_quote(gate.registered_model)}' and run_id = '{run_id}'"
        )
        if getattr(v, "model_id", None) == model.model_id or v.source == f"models:/{model.model_id}"
    ]
    if existing:
        return max(existing, key=lambda v: int(v.version))
    import mlflow

    return mlflow.register_model(
        f"models:/{model.model_id}",
        gate.registered_model,
        tags={"airflow.dag_id": parent.data.tags.get("airflow.dag_id", ""),
              "airflow.run_id": parent.data.tags.get("airflow.run_id", "")},
    )


def _logged_model(tracker: Tracker, parent: Any, gate: Promotion) -> Any:
    """The newest model logged as ``gate.model`` in the run by a node try that succeeded.

    A try that was killed, failed, or lost its Airflow supervisor may have logged a model before
    it stopped; its child run is then not FINISHED (tag ``TAG_NODE_RUN`` on the model), and the
    model is never the one registered. A model still uploading (not READY) is skipped too.
    """
    import mlflow

    run_id = parent.info.run_id
    models = mlflow.search_logged_models(
        experiment_ids=[parent.info.experiment_id],
        filter_string=f"source_run_id = '{run_id}'",
        order_by=[{"field_name": "creation_timestamp", "ascending": False}],
        output_format="list",
    )
    named = [m for m in models if m.name == gate.model]
    tries: dict[str, str] = {}
    for model in named:
        if str(model.status) in ("PENDING", "FAILED"):  # still uploading, or its upload failed
            continue
        node_run = model.tags.get(TAG_NODE_RUN)
        if node_run and node_run not in tries:
            tries[node_run] = tracker.mlflow_client.get_run(node_run).info.status
        if not node_run or tries[node_run] == "FINISHED":
            return model
    if named:
        raise ConfigError(
            f"airflow.yml key 'promotion.model': MLflow run {run_id} has {len(named)} model(s) "
            f"named '{gate.model}', none logged by a node try that succeeded"
        )
    names = sorted({m.name for m in models})
    raise ConfigError(
        f"airflow.yml key 'promotion.model': no model named '{gate.model}' was logged in "
        f"MLflow run {run_id} (models logged there: {', '.join(names) or 'none'}); log it "
        "with an airflow_kedro_mlflow.datasets.MlflowModelDataset whose 'name' is that"
    )


def _model_version(client: Any, gate: Promotion, version: str | None) -> Any | None:
    """The model version, ``None`` if MLflow says it does not exist (deleted since). Any other
    error is raised: taken for "no champion", it would promote the candidate unjudged."""
    if not version:
        return None
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version(gate.registered_model, version)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise


def _alias_holder(client: Any, gate: Promotion) -> Any | None:
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
