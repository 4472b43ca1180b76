"""Keep each DAG run's MLflow parent run in step with the DAG run, whatever changed its state.

The end task settles the parent when a DAG run ends normally; many of Airflow's own actions never
run it: "Clear" with *only failed* (the REST API's default, which leaves the succeeded start and
end tasks alone), a run or a task marked success or failed by hand, an end task killed on every
try, one task of a finished run cleared. Airflow reports each DAG run state change to listeners,
in the process that made it (``DagRun.update_state`` in the scheduler; the REST API's state
patches in the API server; see facts in the README), so this listener, registered by the
provider's plugin, settles the parent from the state Airflow set:

- a DAG run that finished (success or failed): the parent FINISHED or FAILED with the failed
  steps, unless the end task already settled exactly that (its ``mlflow_parent_outcome`` XCom);
- a DAG run running again whose start task is not rerunning (only the failed tasks cleared):
  the parent RUNNING, its clear number updated.

The listener only queues the DAG run: a thread of its own reads the run and its task states from
Airflow's database (waiting for the state change to be committed) and hands them to a short
process (``runtime/parent_sync.py``) that talks to MLflow, so the scheduler never waits on MLflow
and never imports the project. After that process, the run is read again and settled again if its
state moved meanwhile, so concurrent changes (the scheduler and the API server, two clicks) end
with the latest state. One writer is not a listener: the end task. If it was queued or running
around a listener's write (a task marked success reruns the tasks it blocked, end task
included), that write may have landed after the end task's and undone it, and the run's natural
end, which trusts the end task's record, would leave it so: the listener then watches the run
until its end task is done and the run has ended, and settles that last. A settling that fails
(MLflow down or refusing, the process killed) is not taken for settled: the run is settled again
later, with a growing pause, up to ``RETRY_LIMIT`` times. Light module: loaded with the plugin by
every Airflow process.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from airflow.listeners import hookimpl

from airflow_kedro_mlflow.core.ids import END_TASK_ID, START_TASK_ID
from airflow_kedro_mlflow.core.run_outcome import OUTCOME_XCOM_KEY, RUNNING_STATES

log = logging.getLogger(__name__)

NATURAL_ENDS = frozenset({"success", "task_failure"})
"""The ``msg`` of a DAG run that the scheduler ended because its tasks ended (its end task ran
last); anything else (a state set by hand, a timeout, a deadlock) is settled in any case."""
SETTLE_TIMEOUT_S = 600.0
"""MLflow's client waits about four minutes for a server that is down before it gives up."""
COMMIT_WAIT_S = 15.0
"""How long to wait for the state a listener heard of to be readable (listeners are called
before the change is committed)."""
WATCH_INTERVAL_S = 2.0
"""How often a watched DAG run (see the module docstring) is read again."""
RETRY_FIRST_S, RETRY_MAX_S, RETRY_LIMIT = 5.0, 120.0, 12
"""A failed settling is tried again after 5 s, then twice as long each time up to 2 minutes, 12
times in all: about 20 minutes of pauses, beside each try's own wait for MLflow."""
ACTIVE_TASK_STATES = frozenset({"scheduled", "queued", "running", "up_for_retry",
                                "up_for_reschedule", "restarting", "deferred"})
"""A task in one of these states may still run (and the end task write the parent)."""


@dataclass(frozen=True)
class _Request:
    dag_id: str
    run_id: str
    state: str | None
    """The state the listener heard of (``None``: a task changed, read whatever the run is)."""
    natural: bool
    watch: bool = False
    """Settle only once the end task is done and the DAG run has ended (see the module
    docstring), whatever the end task recorded."""
    failures: int = 0
    """How many settlings of this request failed so far."""

    def merged_with(self, older: _Request | None) -> _Request:
        """This request in place of a pending ``older`` one for the same run: the newest state,
        without dropping a settle, a watch or the failures that the older one had."""
        if older is None:
            return self
        return _Request(self.dag_id, self.run_id, self.state, self.natural and older.natural,
                        self.watch or older.watch, max(self.failures, older.failures))

    def again(self, watch: bool = False, failures: int = 0) -> _Request:
        """This run to serve again later, read as it is then and settled whatever the end task
        recorded."""
        return _Request(self.dag_id, self.run_id, None, natural=False, watch=watch,
                        failures=failures)

    def retried(self) -> _Request | None:
        """This request to serve again after its settling failed (``None``: given up), settled
        then whatever the end task recorded, from the run as it is then."""
        if self.failures + 1 >= RETRY_LIMIT:
            log.error("Gave up settling the MLflow parent run of DAG run %s/%s after %d tries: "
                      "it may not say what the DAG run says until the run changes state again",
                      self.dag_id, self.run_id, RETRY_LIMIT)
            return None
        return self.again(self.watch, self.failures + 1)

    @property
    def delay_s(self) -> float:
        """How long to wait before serving this request again (a watch, or after failures)."""
        if self.failures:
            return min(RETRY_MAX_S, RETRY_FIRST_S * 2 ** (self.failures - 1))
        return WATCH_INTERVAL_S


class ParentRunListener:
    """Airflow listener: queues the DAG runs whose state changed (see the module docstring)."""

    @hookimpl
    def on_dag_run_running(self, dag_run: Any, msg: str) -> None:
        if not _by_dag_test(dag_run):
            _settler().request(dag_run.dag_id, dag_run.run_id, "running", natural=False)

    @hookimpl
    def on_dag_run_success(self, dag_run: Any, msg: str) -> None:
        if not _by_dag_test(dag_run):
            _settler().request(dag_run.dag_id, dag_run.run_id, "success",
                               natural=msg in NATURAL_ENDS)

    @hookimpl
    def on_dag_run_failed(self, dag_run: Any, msg: str) -> None:
        if not _by_dag_test(dag_run):
            _settler().request(dag_run.dag_id, dag_run.run_id, "failed",
                               natural=msg in NATURAL_ENDS)

    @hookimpl
    def on_starting(self, component: Any) -> None:
        """An Airflow job starts (scheduler, dag-processor, triggerer: each with the metadata
        DB): the intermediate-data key exists before any task can need it."""
        if type(component).__name__ != "Job":  # a task process's start: nothing to do
            return
        try:
            ensure_intermediate_key()
        except Exception:
            log.warning("Could not make sure the intermediate-data key exists; the first start "
                        "task will generate it", exc_info=True)

    @hookimpl
    def on_task_instance_success(self, task_instance: Any) -> None:
        _task_changed(task_instance)

    @hookimpl
    def on_task_instance_failed(self, task_instance: Any) -> None:
        _task_changed(task_instance)


def ensure_intermediate_key() -> None:
    """Create the Airflow Variable holding the key that authenticates intermediate data
    (``runtime/intermediate_key.py``) if no key is configured, once per deployment.

    Start tasks generate it otherwise, through the Task SDK, which can only overwrite: two first
    start tasks at once (concurrent runs, a scheduled DAG beside a triggered one) could each sign
    with their own. Here the database's unique key decides: one insert wins, the others fail
    and change nothing, before any task runs."""
    import secrets

    from airflow.models.variable import Variable
    from airflow.utils.session import create_session
    from sqlalchemy import select
    from sqlalchemy.exc import IntegrityError

    from airflow_kedro_mlflow.runtime.intermediate_key import (
        KEY_DESCRIPTION,
        KEY_ENV,
        KEY_VARIABLE,
    )

    if os.environ.get(KEY_ENV):
        return
    try:
        with create_session() as session:
            if session.scalar(select(Variable.id).where(Variable.key == KEY_VARIABLE)) is not None:
                return
            session.add(Variable(key=KEY_VARIABLE, val=secrets.token_urlsafe(32),
                                 description=KEY_DESCRIPTION))
    except IntegrityError:
        return  # another component created it meanwhile
    log.info("Generated the key that authenticates intermediate data: Airflow Variable %s",
             KEY_VARIABLE)


def _task_changed(task_instance: Any) -> None:
    """A task marked by hand (the API server calls task listeners with its database row). A task
    process calls them too, for every task it runs: those are left to the tasks themselves."""
    if type(task_instance).__module__ != "airflow.models.taskinstance":
        return
    try:
        dag_run = task_instance.dag_run
    except Exception:  # detached from its session: judge by the run's own state change
        return
    if not _by_dag_test(dag_run):
        _settler().request(task_instance.dag_id, task_instance.run_id, None, natural=False)


def _by_dag_test(dag_run: Any) -> bool:
    """A run of ``dag.test()`` / ``airflow dags test``: its tasks run in this very process, its
    end task settles the parent, and a thread of ours there would race the process's exit (and
    the forks Airflow's other listeners make as it ends)."""
    by = getattr(dag_run, "triggered_by", None)
    return str(getattr(by, "value", by)) == "test"


class _Settler:
    """One thread per process that settles the queued DAG runs, one at a time, newest request
    per run first served."""

    def __init__(self) -> None:
        self.pid = os.getpid()  # a forked child (an executor's worker) needs a thread of its own
        self._pending: dict[tuple[str, str], _Request] = {}
        self._wake = threading.Condition()
        self._thread = threading.Thread(target=self._serve, name="akm-parent-runs", daemon=True)
        self._thread.start()

    def request(self, dag_id: str, run_id: str, state: str | None, natural: bool) -> None:
        self._queue(_Request(dag_id, run_id, state, natural))

    def _queue(self, request: _Request) -> None:
        with self._wake:
            key = (request.dag_id, request.run_id)
            self._pending[key] = request.merged_with(self._pending.get(key))
            self._wake.notify()

    def _later(self, request: _Request) -> None:
        timer = threading.Timer(request.delay_s, self._queue, (request,))
        timer.daemon = True
        timer.start()

    def _serve(self) -> None:
        while True:
            with self._wake:
                while not self._pending:
                    self._wake.wait()
                key = next(iter(self._pending))
                request = self._pending.pop(key)
            try:
                follow_up = settle_dag_run(request)
            except Exception:  # never let one run stop the thread (e.g. the database is away)
                log.exception("Could not settle the MLflow parent run of DAG run %s/%s",
                              request.dag_id, request.run_id)
                follow_up = request.retried()
            if follow_up is not None:
                self._later(follow_up)


_SETTLER: _Settler | None = None
_SETTLER_LOCK = threading.Lock()


def _settler() -> _Settler:
    global _SETTLER
    with _SETTLER_LOCK:
        if _SETTLER is None or _SETTLER.pid != os.getpid():
            _SETTLER = _Settler()
        return _SETTLER


def settle_dag_run(request: _Request, attempts: int = 5) -> _Request | None:
    """Settle the parent of one DAG run until what was settled is what Airflow says now; the
    request to serve again later, if the run must be watched or a settling failed (see the
    module docstring)."""
    natural = request.natural
    if request.watch:
        snapshot = read_dag_run(request.dag_id, request.run_id, None)
        if snapshot is not None and not snapshot.done:
            return request
        natural = False  # settled whatever the end task recorded
    else:
        snapshot = read_dag_run(request.dag_id, request.run_id, request.state)
    for _ in range(attempts):
        if snapshot is None or not _needs_settling(snapshot, natural):
            return None
        if not _run_settler_process(snapshot):
            return request.retried()
        again = read_dag_run(request.dag_id, request.run_id, None)
        if again is None:
            return None
        if end_task_overlapped(snapshot, again):
            return request.again(watch=True)
        if again.outcome == snapshot.outcome:
            return None
        snapshot, natural = again, False
    # Still moving after ``attempts`` settlings: look again shortly rather than trust the last.
    return request.again()


def end_task_overlapped(before: _DagRunSnapshot, after: _DagRunSnapshot) -> bool:
    """Whether the end task may have written the parent between two reads of its DAG run (and
    so before or after the listener's write that happened between them)."""
    was, now = before.end_state, after.end_state
    return was != now or was in ACTIVE_TASK_STATES or now in ACTIVE_TASK_STATES


@dataclass(frozen=True)
class _DagRunSnapshot:
    dag_file: str
    run: dict[str, Any]
    task_states: dict[str, str | None]
    end_record: Any

    @property
    def end_state(self) -> str | None:
        return self.task_states.get(END_TASK_ID)

    @property
    def done(self) -> bool:
        """The DAG run has ended and its end task will write no more."""
        return self.run["state"] not in RUNNING_STATES and self.end_state not in ACTIVE_TASK_STATES

    @cached_property  # the DAG file is read once per snapshot
    def outcome(self) -> dict[str, object] | None:
        """What the parent must say for this snapshot (``run_outcome``), as the end task
        records it; ``None`` if the DAG file cannot be read."""
        from airflow_kedro_mlflow.core.dag_file import read_exported_dag, step_states
        from airflow_kedro_mlflow.core.run_outcome import parent_outcome

        exported = read_exported_dag(self.dag_file)
        if exported is None:
            return None
        return parent_outcome(self.run["state"], step_states(exported.steps, self.task_states),
                              self.run["clear_number"]).as_record()


def read_dag_run(dag_id: str, run_id: str, expected_state: str | None) -> _DagRunSnapshot | None:
    """The DAG run as Airflow's database has it (``None``: not a run of an exported DAG, or gone).

    With ``expected_state``, waits up to ``COMMIT_WAIT_S`` for the run to be in it: listeners
    hear of a change before it is committed.
    """
    deadline = time.monotonic() + COMMIT_WAIT_S
    while True:
        snapshot = _read(dag_id, run_id)
        if snapshot is None or expected_state is None or snapshot.run["state"] == expected_state:
            return snapshot
        if time.monotonic() > deadline:
            return snapshot  # changed again meanwhile: settle what it is now
        time.sleep(0.5)


def _read(dag_id: str, run_id: str) -> _DagRunSnapshot | None:
    from airflow.models.dag import DagModel
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        fileloc = session.scalar(select(DagModel.fileloc).where(DagModel.dag_id == dag_id))
        if not fileloc or not _is_exported_dag(fileloc):
            return None
        dag_run = session.scalar(
            select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))
        if dag_run is None:
            return None
        task_states = {
            task_id: _text(state) for task_id, state in session.execute(
                select(TaskInstance.task_id, TaskInstance.state).where(
                    TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id))
        }
        row = session.scalar(select(XComModel).where(
            XComModel.dag_id == dag_id, XComModel.run_id == run_id,
            XComModel.task_id == END_TASK_ID, XComModel.key == OUTCOME_XCOM_KEY))
        end_record = _xcom_value(row)
        run = {
            "dag_id": dag_id,
            "run_id": run_id,
            "state": _text(dag_run.state),
            "clear_number": int(getattr(dag_run, "clear_number", 0) or 0),
            "run_after": _iso(getattr(dag_run, "run_after", None)),
            "start_date": _iso(dag_run.start_date),
            "end_date": _iso(dag_run.end_date),
        }
    return _DagRunSnapshot(fileloc, run, task_states, end_record)


def _needs_settling(snapshot: _DagRunSnapshot, natural: bool) -> bool:
    state = snapshot.run["state"]
    if state in RUNNING_STATES:
        # The start task sets the parent RUNNING when it runs; only a rerun without it needs us.
        return snapshot.task_states.get(START_TASK_ID) == "success"
    if state not in ("success", "failed"):
        return False
    if natural and isinstance(snapshot.end_record, dict) and snapshot.end_state == "success":
        return snapshot.outcome != snapshot.end_record  # else the end task settled exactly this
    return True


def _run_settler_process(snapshot: _DagRunSnapshot) -> bool:
    """Whether the settling process made the parent say what ``snapshot`` says."""
    request = {**snapshot.run, "dag_file": snapshot.dag_file, "task_states": snapshot.task_states}
    label = f"{snapshot.run['dag_id']}/{snapshot.run['run_id']}"
    try:
        result = subprocess.run(
            [sys.executable, "-m", "airflow_kedro_mlflow.runtime.parent_sync"],
            input=json.dumps(request), capture_output=True, text=True,
            timeout=SETTLE_TIMEOUT_S, env=settler_environment(), cwd=tempfile.gettempdir())
    except subprocess.TimeoutExpired:
        log.warning("Settling the MLflow parent run of DAG run %s took over %.0f s: stopped",
                    label, SETTLE_TIMEOUT_S)
        return False
    if result.returncode != 0:
        how = (f"stopped by signal {-result.returncode}" if result.returncode < 0
               else "\n".join(result.stderr.strip().splitlines()[-3:]))
        log.warning("Could not settle the MLflow parent run of DAG run %s (%s state): %s", label,
                    snapshot.run["state"], how)
        return False
    outcome = (result.stdout.strip().splitlines() or [""])[-1]  # after Kedro's own log lines
    log.info("MLflow parent run of DAG run %s (%s): %s", label, snapshot.run["state"], outcome)
    return True


def settler_environment() -> dict[str, str]:
    """This process's environment without Airflow's own secrets: the settling process opens the
    project (its settings module runs) and needs MLflow's settings, not Airflow's database.
    Connections stay: ``mlflow.yml`` may name one (``${airflow_conn:...}``)."""
    from airflow_kedro_mlflow.core.environment import without_airflow_secrets

    return without_airflow_secrets(os.environ)


_EXPORTED: dict[str, tuple[float, bool]] = {}


def _is_exported_dag(fileloc: str) -> bool:
    """Whether the DAG file was exported by this package (cached until the file changes)."""
    try:
        mtime = os.stat(fileloc).st_mtime
    except OSError:
        return False
    cached = _EXPORTED.get(fileloc)
    if cached is None or cached[0] != mtime:
        try:
            with open(fileloc, encoding="utf-8") as stream:
                text = stream.read()
        except OSError:
            return False
        cached = (mtime, "airflow_kedro_mlflow.operators" in text and "KedroProject(" in text)
        _EXPORTED[fileloc] = cached
    return cached[1]


def _xcom_value(row: Any) -> Any:
    if row is None:
        return None
    try:
        from airflow.models.xcom import XComModel

        value = XComModel.deserialize_value(row)
    except Exception:
        value = getattr(row, "value", None)
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    return value


def _text(state: Any) -> str | None:
    return None if state is None else str(getattr(state, "value", state))


def _iso(moment: Any) -> str | None:
    return moment.isoformat() if moment is not None else None
