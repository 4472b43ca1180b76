"""The node runner's process: one node task run outside Airflow's task process.

Three things a task process gets from Airflow are made here: logging (to stderr, read by the
launching task into the task log), masking (the credentials it reads, and the intermediate data
key its launching task hands it, are redacted from every line it writes, prints and tracebacks
included), and stopping (SIGTERM from the launcher makes the try stop before its next save, as
``on_kill`` does in a node task). Its parent process is the launcher, so when that dies the try
guard sees an orphan and stops too.
"""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from airflow_kedro_mlflow.config.credentials import redact
from airflow_kedro_mlflow.runtime.invocation import EXIT_ABANDONED, EXIT_FAILED, NodeInvocation

log = logging.getLogger("airflow_kedro_mlflow.node_runner")


class RedactingStream(io.TextIOBase):
    """Writes whole lines to ``target`` with every masked secret replaced by ``***``."""

    def __init__(self, target: TextIO) -> None:
        self._target = target
        self._pending = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._pending += text
        if "\n" in self._pending:
            complete, self._pending = self._pending.rsplit("\n", 1)
            self._target.write(redact(complete) + "\n")
            self._target.flush()
        return len(text)

    def flush(self) -> None:
        if self._pending:
            self._target.write(redact(self._pending))
            self._pending = ""
        self._target.flush()

    def isatty(self) -> bool:
        return False

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._target, "encoding", "utf-8")


def run_invocation(invocation: NodeInvocation) -> int:
    sys.stdout = RedactingStream(sys.__stdout__ or sys.stdout)
    sys.stderr = RedactingStream(sys.__stderr__ or sys.stderr)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, force=True,
                        format="%(levelname)s %(name)s: %(message)s")
    from airflow_kedro_mlflow.runtime.try_guard import TryAbandonedError, request_stop

    signal.signal(signal.SIGTERM, lambda *_: request_stop(
        "the launching task asked this try to stop (SIGTERM)"))
    result: dict[str, Any] = {"python": sys.executable}
    log.info("Node runner: %s in %s (python %s)", ", ".join(invocation.node_names),
             invocation.project_path, sys.executable)
    try:
        _run(invocation, result)
    except TryAbandonedError as exc:
        log.error("%s", exc)
        return EXIT_ABANDONED
    except Exception:
        log.exception("Node task %s failed", invocation.task_id)
        return EXIT_FAILED
    finally:
        _write(invocation.result_file, result)
        sys.stdout.flush()
        sys.stderr.flush()
    return 0


def _run(invocation: NodeInvocation, result: dict[str, Any]) -> None:
    from airflow_kedro_mlflow.config.project_ref import KedroProject
    from airflow_kedro_mlflow.core.run_identity import RunIdentity
    from airflow_kedro_mlflow.runtime.intermediate_key import take_handed_over
    from airflow_kedro_mlflow.runtime.node_run import NodeTask, run_node

    take_handed_over(invocation.dag_id, invocation.run_id)  # the run's key, out of os.environ
    root = Path(invocation.project_path).resolve()
    project = KedroProject(
        package_name=invocation.package_name or _package_name(root),
        pipeline=invocation.pipeline,
        path=str(root),
        dag_file=str(root / "pyproject.toml"),
        env=invocation.env,
        conf_source=invocation.conf_source,
    )
    task = NodeTask(
        node_names=invocation.node_names,
        intermediate_inputs=invocation.intermediate_inputs,
        intermediate_outputs=invocation.intermediate_outputs,
        versioned_inputs=invocation.versioned_inputs,
    )
    run = RunIdentity(
        dag_id=invocation.dag_id,
        run_id=invocation.run_id,
        run_after=datetime.fromisoformat(invocation.run_after),
        task_id=invocation.task_id,
        try_number=invocation.try_number,
    )

    def tracked(run_id: str, url: str | None) -> None:
        result.update(mlflow_run_id=run_id, mlflow_run_url=url)
        _write(invocation.result_file, result)  # the link shows even if the node then fails

    def lineage(found: Any) -> None:
        result["lineage"] = {
            side: [[d.namespace, d.name] for d in getattr(found, side)]
            for side in ("inputs", "outputs")
        }

    run_node(project, task, run, invocation.params or None,
             parent_run_id=invocation.parent_run_id, experiment_id=invocation.experiment_id,
             on_tracked=tracked, on_lineage=lineage if invocation.lineage else None)


def _package_name(root: Path) -> str:
    import tomllib

    try:
        with open(root / "pyproject.toml", "rb") as handle:
            return str(tomllib.load(handle)["tool"]["kedro"]["package_name"])
    except (OSError, KeyError, ValueError):
        from airflow_kedro_mlflow.core.errors import ProjectNotFoundError

        raise ProjectNotFoundError(
            f"{root}: no Kedro project there (no [tool.kedro] package_name in pyproject.toml)"
        ) from None


def _write(path: str | None, result: dict[str, Any]) -> None:
    if not path:
        return
    temporary = f"{path}.{os.getpid()}.tmp"
    with open(temporary, "w") as handle:
        json.dump(result, handle)
    os.replace(temporary, path)
