"""One MLflow parent run per DAG run, one nested child run per node task try.

The parent is created by the start task and found again by its tags (DAG id + run id, and the
DAG run's clear number and start date), so a retried start task and a cleared DAG run reuse it,
while a run recreated under the id of a deleted one gets its own. While a node runs, the parent
is the *active* run: whatever the node logs through MLflow's fluent API, or through kedro-mlflow's
hook and datasets (which reuse an active run and then never end it), lands on the parent, where
runs are compared. The child run of the try records the node itself: its ``params:`` inputs,
duration, outcome and links. Only the end task sets the parent's final status: a node task makes
the parent active and detaches it again without a status write (MLflow's resume and ``end_run``
would write one, and its atexit handler would mark a run still active at exit FINISHED).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl

from airflow_kedro_mlflow.config.credentials import Credentials
from airflow_kedro_mlflow.config.kedro_project import (
    conf_source_path,
    config_loader,
    describe_sources,
    read_config,
)
from airflow_kedro_mlflow.config.mlflow import (
    CONFIG_KEY,
    CONFIG_PATTERNS,
    MlflowSettings,
    settings_from_dict,
)
from airflow_kedro_mlflow.config.project_ref import KedroProject
from airflow_kedro_mlflow.core.errors import ConfigError
from airflow_kedro_mlflow.core.run_identity import RunIdentity
from airflow_kedro_mlflow.core.run_outcome import ParentOutcome
from airflow_kedro_mlflow.runtime import active_run
from airflow_kedro_mlflow.runtime.mlflow_env import point_mlflow_at
from airflow_kedro_mlflow.runtime.mlflow_rest import Run, RunData, RunInfo, tracking_client
from airflow_kedro_mlflow.runtime.try_guard import TryGuard

log = logging.getLogger(__name__)

TAG_ROLE = "airflow_kedro_mlflow.role"
TAG_DAG_ID = "airflow.dag_id"
TAG_RUN_ID = "airflow.run_id"
TAG_FAILED_NODES = "kedro.failed_nodes"
TAG_PROMOTION_PREFIX = "promotion."
TAG_TASK_ID = "airflow.task_id"
TAG_TRY_NUMBER = "airflow.try_number"
TAG_NODE_RUN = "airflow_kedro_mlflow.node_run_id"
"""On a logged model: the child run of the node try that logged it."""
TAG_CLEAR_NUMBER = "airflow.clear_number"
TAG_RUN_STARTED = "airflow.dag_run_start_date"
TAG_SUPERSEDED = "airflow_kedro_mlflow.superseded"
TAG_CLOSED_BY = "airflow_kedro_mlflow.closed_by"
KEDRO_MLFLOW_COMMAND = "kedro_command"
KEDRO_MLFLOW_NODE_NAMES = "node_names"
"""Tags kedro-mlflow's hook sets on the active run at each ``session.run``."""
MLFLOW_RUN_CONTEXT = "MLFLOW_RUN_CONTEXT"
"""MLflow adds the tags of this JSON to every run and logged model created by its fluent API."""
MAX_PARAM_LENGTH = 6000
PARAMS_PER_BATCH = 100


def load_settings(
    project: KedroProject, project_path: Path, package_name: str, loader: Any = None
) -> MlflowSettings:
    """The pipeline's MLflow settings, read through ``loader`` (the project's config loader)."""
    if loader is None:
        loader = config_loader(project_path, project.env, project.conf_source)
    conf_root = conf_source_path(project_path, project.conf_source)
    source = describe_sources(conf_root, project.env, "mlflow")
    config = read_config(loader, CONFIG_KEY, CONFIG_PATTERNS, source)
    return settings_from_dict(
        config,
        project_path=project_path,
        pipeline_name=project.pipeline,
        package_name=package_name,
        source=source,
    )


def export_credentials(settings: MlflowSettings, credentials: Credentials) -> None:
    """Put ``server.credentials``' entries into this task's environment (kedro-mlflow's contract:
    e.g. ``AWS_ACCESS_KEY_ID``, ``MLFLOW_S3_ENDPOINT_URL``, ``MLFLOW_TRACKING_TOKEN``).

    kedro-mlflow's own hook skips this when a run is already active, as it is in node tasks.
    """
    if not settings.file.server.credentials:
        return
    entry = credentials.entry(
        settings.file.server.credentials, referenced_by=f"{settings.source}: key 'server.credentials'"
    )
    for name, value in entry.items():
        if value is not None:
            os.environ[str(name)] = str(value)


@dataclass
class Tracker:
    """MLflow, configured for one project and DAG run inside a task.

    Run bookkeeping goes through ``client`` (``mlflow_rest``: no MLflow import with a tracking
    server); ``mlflow_client`` is MLflow's full client, for the registry and logged models.
    """

    settings: MlflowSettings
    _experiment_id: str | None = field(default=None, init=False, repr=False)

    @property
    def tracking_uri(self) -> str:
        """The tracking URI (set whenever tracking is on: ``settings_from_dict`` requires one)."""
        return self.settings.tracking_uri or ""

    @classmethod
    def open(
        cls,
        project: KedroProject,
        project_path: Path,
        package_name: str,
        credentials: Credentials,
        loader: Any = None,
    ) -> Tracker | None:
        settings = load_settings(project, project_path, package_name, loader)
        if not settings.enabled:
            log.info("MLflow tracking is off for pipeline '%s' (%s)", project.pipeline, settings.source)
            return None
        export_credentials(settings, credentials)
        tracker = cls(settings)
        # MLflow reads these when (if) the node's code imports it; set_*_uri only if it already
        # has, since an explicit setting wins over the environment.
        point_mlflow_at(settings)
        if "mlflow" in sys.modules:  # imported already (by a worker's preload, say)
            import mlflow

            # set_tracking_uri also resets MLflow's tracing: only when it would change anything
            if mlflow.get_tracking_uri() != tracker.tracking_uri:
                mlflow.set_tracking_uri(tracker.tracking_uri)
            if settings.registry_uri and mlflow.get_registry_uri() != settings.registry_uri:
                mlflow.set_registry_uri(settings.registry_uri)
        return tracker

    @cached_property
    def client(self) -> Any:
        return tracking_client(self.tracking_uri, self.settings.registry_uri)

    @cached_property
    def mlflow_client(self) -> Any:
        from mlflow.tracking import MlflowClient

        return MlflowClient(self.tracking_uri, self.settings.registry_uri)

    def experiment_id(self) -> str:
        """The project's experiment (created, or restored if allowed), looked up once per task."""
        if self._experiment_id is None:
            self._experiment_id = self._find_or_create_experiment()
        return self._experiment_id

    def _find_or_create_experiment(self) -> str:
        client = self.client
        experiment = client.get_experiment_by_name(self.settings.experiment_name)
        if experiment is None:
            tags = self.settings.file.tracking.experiment.create_experiment_kwargs.tags
            try:
                return client.create_experiment(
                    self.settings.experiment_name,
                    artifact_location=self.settings.artifact_location,
                    tags={str(k): str(v) for k, v in tags.items()} or None,
                )
            except Exception:  # created meanwhile by a concurrent start task?
                experiment = client.get_experiment_by_name(self.settings.experiment_name)
                if experiment is None:
                    raise
        if experiment.lifecycle_stage == "deleted":
            if not self.settings.file.tracking.experiment.restore_if_deleted:
                raise ConfigError(
                    f"{self.settings.source}: MLflow experiment '{self.settings.experiment_name}' "
                    "is deleted and key 'tracking.experiment.restore_if_deleted' is false: "
                    "restore it, or name another experiment"
                )
            client.restore_experiment(experiment.experiment_id)
        return experiment.experiment_id

    def find_parent(self, run: RunIdentity, experiment_id: str) -> Any | None:
        """The newest parent run recorded for the DAG run's ids (a recreated run has several)."""
        runs = self.client.search_runs(
            [experiment_id],
            filter_string=(
                f"tags.`{TAG_ROLE}` = 'parent' and tags.`{TAG_DAG_ID}` = '{_quote(run.dag_id)}' "
                f"and tags.`{TAG_RUN_ID}` = '{_quote(run.run_id)}'"
            ),
            max_results=1,
            order_by=["attributes.start_time DESC"],
        )
        return runs[0] if runs else None

    def ensure_parent(
        self, run: RunIdentity, tags: Mapping[str, str], params: Mapping[str, Any],
        gate_reruns: bool = True,
    ) -> Any:
        """The DAG run's parent run, RUNNING: found again (a retried start task, a cleared run)
        or created (a new run, or a new run under the id of a deleted one). Returned as found or
        created, for its ids: not read again after this call's updates (a request less).

        A rerun drops the earlier attempt's ``kedro.failed_nodes``, and its promotion verdict
        when the gate runs again (``gate_reruns``): a task cleared without the gate keeps the
        decision the gate made last, which is still the latest."""
        client = self.client
        experiment_id = self.experiment_id()
        parent = self.find_parent(run, experiment_id)
        if parent is not None and not same_dag_run(parent.data.tags, run):
            self._supersede(parent, run)
            parent = None
        incarnation = {TAG_CLEAR_NUMBER: str(run.clear_number), TAG_RUN_STARTED: _iso(run.start_date)}
        if parent is None:
            parent = client.create_run(
                experiment_id,
                run_name=self.settings.file.tracking.run.name or run.dag_id,
                tags={**tags, **incarnation, TAG_ROLE: "parent", TAG_DAG_ID: run.dag_id,
                      TAG_RUN_ID: run.run_id},
            )
            log.info("Created MLflow parent run %s", parent.info.run_id)
        else:
            parent_id = parent.info.run_id
            if parent.info.status != "RUNNING":
                client.update_run(parent_id, status="RUNNING")
            # A rerun decides its outcome anew: drop the verdict of the earlier attempt.
            for key in parent.data.tags:
                if key == TAG_FAILED_NODES or (gate_reruns and key.startswith(TAG_PROMOTION_PREFIX)):
                    drop_tag(client, parent_id, key)
            if any(parent.data.tags.get(k) != v for k, v in incarnation.items()):
                client.log_batch(parent_id, tags=incarnation)
            log.info("Reusing MLflow parent run %s of this DAG run", parent_id)
        self.log_params(parent.info.run_id, params, existing=_existing_params(parent))
        return parent

    def _supersede(self, parent: Any, run: RunIdentity) -> None:
        """A parent of a deleted DAG run whose id was reused: closed, never reused."""
        client = self.client
        if parent.info.status == "RUNNING":
            client.set_terminated(parent.info.run_id, status="KILLED")
        client.set_tag(parent.info.run_id, TAG_SUPERSEDED, "a later DAG run with the same run id")
        log.warning(
            "MLflow run %s belonged to an earlier DAG run with id %s (deleted since); this run "
            "gets a parent of its own",
            parent.info.run_id,
            run.run_id,
        )

    def close_stale_parents(
        self, run: RunIdentity, dag_run_state: Callable[[str], str | None], limit: int = 20
    ) -> list[str]:
        """Close parents of this DAG's other runs left RUNNING although Airflow ended those runs.

        Whatever way a DAG run ends, its end task normally closes the parent; this catches the
        rest (an end task killed, a run deleted while running). ``dag_run_state(run_id)`` is the
        run's state in Airflow, ``None`` when it no longer exists; a parent is closed only when
        its run ended (success, failed) or is gone, never for any other answer (queued, running,
        or ``"unknown"`` when Airflow could not tell). Returns the closed run ids.
        """
        client = self.client
        stale = client.search_runs(
            [self.experiment_id()],
            filter_string=(
                f"tags.`{TAG_ROLE}` = 'parent' and tags.`{TAG_DAG_ID}` = '{_quote(run.dag_id)}' "
                "and attributes.status = 'RUNNING'"
            ),
            max_results=limit,
        )
        closed = []
        for parent in stale:
            other = parent.data.tags.get(TAG_RUN_ID)
            if not other or other == run.run_id:
                continue
            state = dag_run_state(other)
            if state is not None and state not in ("success", "failed"):
                continue
            status = {"success": "FINISHED", "failed": "FAILED"}.get(state or "", "KILLED")
            client.set_tag(parent.info.run_id, TAG_CLOSED_BY, f"{run.dag_id}/{run.run_id}")
            client.set_terminated(parent.info.run_id, status=status)
            log.warning(
                "Closed MLflow run %s of DAG run %s (%s in Airflow) as %s",
                parent.info.run_id, other, state or "deleted", status,
            )
            closed.append(parent.info.run_id)
        return closed

    def log_params(
        self, run_id: str, params: Mapping[str, Any], existing: Mapping[str, str] | None = None
    ) -> None:
        """Log params in batches, applying the configured long-value strategy; nested mappings
        flattened to ``a.b.c`` keys unless ``tracking.params.dict_params.flatten`` is false (one
        level only if ``recursive`` is false), as kedro-mlflow does."""
        existing = existing or {}
        options = self.settings.file.tracking.params
        dict_params = options.dict_params
        flat = (flatten(params, dict_params.sep, recursive=dict_params.recursive)
                if dict_params.flatten else dict(params))
        batch_params: list[tuple[str, str]] = []
        batch_tags: list[tuple[str, str]] = []
        for key, value in flat.items():
            text = str(value)
            if len(text) > MAX_PARAM_LENGTH:
                strategy = options.long_params_strategy
                if strategy == "fail":
                    raise ConfigError(
                        f"parameter '{key}' is {len(text)} characters long, over MLflow's limit of "
                        f"{MAX_PARAM_LENGTH}: set 'tracking.params.long_params_strategy' to "
                        f"'truncate' or 'tag' in {self.settings.source}"
                    )
                if strategy == "tag":
                    batch_tags.append((key, text))
                    continue
                text = text[:MAX_PARAM_LENGTH]
            if key not in existing:
                batch_params.append((key, text))
        client = self.client
        for start in range(0, len(batch_params), PARAMS_PER_BATCH):
            client.log_batch(run_id, params=dict(batch_params[start : start + PARAMS_PER_BATCH]))
        for start in range(0, len(batch_tags), PARAMS_PER_BATCH):
            client.log_batch(run_id, tags=dict(batch_tags[start : start + PARAMS_PER_BATCH]))

    @contextlib.contextmanager
    def node_run(
        self,
        parent_id: str,
        run: RunIdentity,
        node_name: str,
        params: Mapping[str, Any],
        guard: TryGuard | None = None,
        experiment_id: str | None = None,
        grouped: bool = False,
    ) -> Iterator[Any]:
        """A child run for this try; the parent is the active run meanwhile, and left RUNNING.

        Every MLflow model logged during the try (by any dataset or node code) is tagged with
        this child's id, so the promotion gate can tell a model of a successful try from one of
        a failed or killed try. Children of earlier tries of this task that are still RUNNING
        (killed, or unable to reach MLflow at their end) are closed as KILLED: Airflow starts a
        try only once the previous one is over. ``experiment_id`` (the parent's, as the start
        task reported it) saves fetching the parent. ``grouped``: one node of a grouped task,
        whose parent activation and earlier tries ``node_runs`` handles once for the task.
        """
        client = self.client
        if experiment_id is None:
            parent = client.get_run(parent_id)
        else:
            parent = Run(RunInfo(run_id=parent_id, experiment_id=experiment_id, status="RUNNING"), RunData())
        if not grouped:
            self._close_earlier_tries(parent, run)
        child = client.create_run(
            parent.info.experiment_id,
            run_name=f"{run.task_id} (try {run.try_number})",
            tags={
                "mlflow.parentRunId": parent_id,
                TAG_ROLE: "node",
                TAG_DAG_ID: run.dag_id,
                TAG_RUN_ID: run.run_id,
                TAG_TASK_ID: run.task_id,
                TAG_TRY_NUMBER: str(run.try_number),
                **({"airflow.log_url": run.log_url} if run.log_url else {}),
                "kedro.node": node_name,
            },
        )
        child_id = child.info.run_id
        self.log_params(child_id, params)
        started = time.monotonic()
        status = "FAILED"
        context = {TAG_NODE_RUN: child_id, TAG_TASK_ID: run.task_id, TAG_TRY_NUMBER: str(run.try_number)}
        previous_context = os.environ.get(MLFLOW_RUN_CONTEXT)
        os.environ[MLFLOW_RUN_CONTEXT] = json.dumps(context)
        failure: BaseException | None = None
        try:
            with contextlib.nullcontext() if grouped else self.activated(parent):
                yield child
            status = "FINISHED"
        except BaseException as exc:
            failure = exc
            with contextlib.suppress(Exception):  # MLflow may be what failed
                client.set_tag(child_id, "kedro.error_type", type(exc).__name__)
            raise
        finally:
            _restore_env(MLFLOW_RUN_CONTEXT, previous_context)
            if guard is not None and guard.abandoned:
                status = "KILLED"
            try:
                client.log_batch(child_id, metrics={"duration_s": round(time.monotonic() - started, 3)})
                client.set_terminated(child_id, status=status)
            except Exception as exc:
                if failure is None:
                    raise
                # The node's own error is the one to report; the next try or the end task
                # closes this child.
                log.warning("Could not record MLflow run %s as %s: %s", child_id, status, exc)

    @contextlib.contextmanager
    def node_runs(
        self,
        parent_id: str,
        run: RunIdentity,
        params: Mapping[str, Mapping[str, Any]],
        guard: TryGuard | None = None,
        experiment_id: str | None = None,
    ) -> Iterator[Any]:
        """Kedro hooks for a grouped task: each node gets its own child run (``node_run``), from
        the moment Kedro starts it until the next node starts or the task ends, so the outputs
        it saves (a logged model) belong to it. The parent is active throughout."""
        client = self.client
        if experiment_id is None:
            parent = client.get_run(parent_id)
        else:
            parent = Run(RunInfo(run_id=parent_id, experiment_id=experiment_id, status="RUNNING"), RunData())
        self._close_earlier_tries(parent, run)
        hooks = _NodeChildRuns(
            lambda name: self.node_run(
                parent_id, run, name, params.get(name, {}), guard, parent.info.experiment_id, grouped=True
            )
        )
        with self.activated(parent):
            try:
                yield hooks
            except BaseException as exc:
                hooks.close(exc)
                raise
            hooks.close(None)

    @contextlib.contextmanager
    def activated(self, run: Any) -> Iterator[None]:
        """``run`` as MLflow's active run meanwhile, its status untouched (see ``active_run``).

        MLflow's own resume (``start_run(run_id=...)``) writes RUNNING and its ``end_run`` writes
        a status: a try that outlives its DAG run (told to stop, or orphaned) would reopen a
        parent the end task had closed. Only the start and end tasks set the parent's status.
        """
        with active_run.activated(run):
            yield

    def _close_earlier_tries(self, parent: Any, run: RunIdentity) -> None:
        if run.try_number <= 1:  # the task's first try in this DAG run: nothing earlier to close
            return
        for child in self.client.search_runs(
            [parent.info.experiment_id],
            filter_string=(
                f"tags.`mlflow.parentRunId` = '{parent.info.run_id}' and attributes.status = "
                f"'RUNNING' and tags.`{TAG_TASK_ID}` = '{_quote(run.task_id)}'"
            ),
        ):
            if int(child.data.tags.get(TAG_TRY_NUMBER, "0")) < run.try_number:
                self.client.set_terminated(child.info.run_id, status="KILLED")

    def settle_parent(
        self,
        run: RunIdentity,
        parent_id: str | None,
        outcome: ParentOutcome,
        duration_s: float | None = None,
        pipeline: str = "__default__",
    ) -> Any | None:
        """Make the DAG run's parent say ``outcome``: its status, ``kedro.failed_nodes`` and the
        DAG run's clear number; a finished outcome also closes children left RUNNING (tries that
        were killed or lost MLflow) as KILLED. Writes only what differs, so settling twice (the
        end task, then the listener) costs one read.

        ``parent_id`` is the parent the start task opened; without one (the start task failed
        after it created the parent, or the listener settles) it is looked up by the DAG run's
        ids, and a parent of an earlier DAG run under the same id (deleted since) is left alone.
        Returns the parent as it is now, ``None`` if the DAG run has none.

        kedro-mlflow's hook tags the active run, the parent, in every node task with that task's
        ``kedro run --node=...`` command and node names; a finished parent then says what the DAG
        run was, as kedro-mlflow tags a ``kedro run`` of the whole pipeline.
        """
        client = self.client
        if parent_id is not None:
            parent = client.get_run(parent_id)
        else:
            parent = self.find_parent(run, self.experiment_id())
            if parent is not None and not same_dag_run(parent.data.tags, run):
                parent = None
        if parent is None:
            log.warning("No MLflow parent run found for DAG run %s", run.run_id)
            return None
        parent_id = parent.info.run_id
        current = parent.data.tags
        tags: dict[str, str] = {}
        stale: list[str] = []
        if outcome.failed_steps:
            tags[TAG_FAILED_NODES] = ",".join(outcome.failed_steps)
        else:
            stale.append(TAG_FAILED_NODES)  # an earlier attempt failed; this one did not (yet)
        if outcome.clear_number > int(current.get(TAG_CLEAR_NUMBER) or 0):
            tags[TAG_CLEAR_NUMBER] = str(outcome.clear_number)
            if run.start_date is not None:
                tags[TAG_RUN_STARTED] = _iso(run.start_date)
        metrics: dict[str, float] = {}
        if outcome.finished:
            for child in client.search_runs(
                [parent.info.experiment_id],
                filter_string=(f"tags.`mlflow.parentRunId` = '{parent_id}' and "
                               "attributes.status = 'RUNNING'"),
            ):
                client.set_terminated(child.info.run_id, status="KILLED")
            if KEDRO_MLFLOW_COMMAND in current:
                tags[KEDRO_MLFLOW_COMMAND] = f"kedro run --pipeline={pipeline}"
                stale.append(KEDRO_MLFLOW_NODE_NAMES)
            if duration_s is not None:
                metrics["dag_run_duration_s"] = round(duration_s, 3)
        tags = {key: value for key, value in tags.items() if current.get(key) != value}
        if tags or metrics:
            client.log_batch(parent_id, tags=tags, metrics=metrics)
        for key in stale:
            if key in current:
                drop_tag(client, parent_id, key)
        if parent.info.status != outcome.status:
            if outcome.finished:
                client.set_terminated(parent_id, status=outcome.status)
            else:
                client.update_run(parent_id, status=outcome.status)
        elif not (tags or metrics or any(key in current for key in stale)):
            return parent  # nothing changed: no need to read it back
        log.info("MLflow parent run %s of DAG run %s is %s%s", parent_id, run.run_id,
                 outcome.status, f" (failed: {', '.join(outcome.failed_steps)})"
                 if outcome.failed_steps else "")
        return client.get_run(parent_id)

    def run_url(self, run: Any) -> str | None:
        return self.settings.run_url(run.info.experiment_id, run.info.run_id)


class _NodeChildRuns:
    """Opens a node's child run when Kedro starts the node; closes the previous node's."""

    def __init__(self, child_run: Callable[[str], Any]):
        self._child_run = child_run
        self._current: Any = None

    @hook_impl
    def before_node_run(self, node: Any) -> None:
        self.close(None)
        current = self._child_run(node.name)
        current.__enter__()
        self._current = current

    def close(self, error: BaseException | None) -> None:
        current, self._current = self._current, None
        if current is not None:
            current.__exit__(type(error) if error else None, error, error.__traceback__ if error else None)


def flatten(
    params: Mapping[str, Any], sep: str = ".", prefix: str = "", recursive: bool = True
) -> dict[str, Any]:
    """Nested parameter dicts as one level of ``a.b.c`` keys (``recursive=False``: ``a.b``)."""
    flat: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{sep}{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value and (recursive or not prefix):
            flat.update(flatten(value, sep, name, recursive))
        else:
            flat[name] = value
    return flat


def same_dag_run(parent_tags: Mapping[str, str], run: RunIdentity) -> bool:
    """Whether a parent found by the DAG run's ids belongs to this DAG run, not to a deleted one.

    Every clear of a DAG run increments its ``clear_number``; a run recreated under the id of a
    deleted one starts again at 0 with a new start date. So a parent that recorded a lower clear
    number belongs to this run (cleared since); one with the same number belongs to it only if
    it recorded the same start date (a retried start task); anything else is another run's.
    """
    recorded = int(parent_tags.get(TAG_CLEAR_NUMBER) or 0)
    if run.clear_number != recorded:
        return run.clear_number > recorded
    started = parent_tags.get(TAG_RUN_STARTED)
    return not started or not run.start_date or started == _iso(run.start_date)


def _iso(moment: datetime | None) -> str:
    return moment.isoformat() if moment else ""


def _restore_env(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


def drop_tag(client: Any, run_id: str, key: str) -> None:
    """Delete a tag the run was read with. Two writers settle a parent at once (the end task and
    a listener, the scheduler's and the API server's listeners): both read the tag, and MLflow
    refuses the second deletion (``RESOURCE_DOES_NOT_EXIST``), which must not fail the writer
    whose status write is still to come."""
    try:
        client.delete_tag(run_id, key)
    except Exception as exc:
        if getattr(exc, "error_code", None) != "RESOURCE_DOES_NOT_EXIST":
            raise


def _existing_params(run: Any) -> dict[str, str]:
    return dict(run.data.params)


def _quote(value: str) -> str:
    return value.replace("'", "\\'")
