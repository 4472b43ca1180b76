"""A node task run from a shell (``python -m airflow_kedro_mlflow.node_runner``): its arguments.

The isolated execution modes (another virtualenv on the worker, a Kubernetes pod) run a node's
task in a process that is not Airflow's task process. This command gives that process exactly the
node task's semantics: the DAG run's save version (from DAG id, run id and run date), the
intermediate store, the MLflow child run under the DAG run's parent, owned outputs on retries,
credentials masked in everything it prints. It needs Kedro, the project and this package, not
Airflow: the launching task reads what only Airflow knows (the parent run, the run's conf) and
passes it as arguments; ``--result-file`` hands back the child run's link and the lineage.

Example (what a launching task runs; ``--help`` lists every option)::

    python -m airflow_kedro_mlflow.node_runner --project /app/wine_classifier \\
        --dag-id wine_classifier --run-id manual__2026-12-01T10:00:00+00:00 \\
        --run-after 2026-12-01T10:00:00+00:00 --try-number 1 --task-id train_model \\
        --node train_model --parent-run-id 6f1c... --experiment-id 1

This module builds the command too (``command``), so what launches and what runs cannot drift;
building it imports nothing heavy.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

MODULE = "airflow_kedro_mlflow.node_runner"
EXIT_FAILED = 1
EXIT_ABANDONED = 3
"""The try was abandoned (SIGTERM, or its launching task is gone): not the node's failure."""


@dataclass(frozen=True)
class NodeInvocation:
    """Everything the runner needs: the project, the DAG run's identity, the node task."""

    project_path: str
    pipeline: str
    dag_id: str
    run_id: str
    run_after: str
    """ISO 8601, with its timezone: with DAG id and run id, it fixes the Kedro save version."""
    task_id: str
    node_names: tuple[str, ...]
    try_number: int = 1
    package_name: str | None = None
    env: str | None = None
    conf_source: str | None = None
    intermediate_inputs: tuple[str, ...] = ()
    intermediate_outputs: tuple[str, ...] = ()
    versioned_inputs: tuple[str, ...] = ()
    parent_run_id: str | None = None
    experiment_id: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    """What the DAG run's conf changes of the DAG's params (runtime parameters, as ``--params``)."""
    result_file: str | None = None
    lineage: bool = False

    def arguments(self) -> list[str]:
        """The command line after ``python -m airflow_kedro_mlflow.node_runner``."""
        args = ["--project", self.project_path, "--pipeline", self.pipeline,
                "--dag-id", self.dag_id, "--run-id", self.run_id, "--run-after", self.run_after,
                "--try-number", str(self.try_number), "--task-id", self.task_id]
        for flag, value in (("--package", self.package_name), ("--env", self.env),
                            ("--conf-source", self.conf_source),
                            ("--parent-run-id", self.parent_run_id),
                            ("--experiment-id", self.experiment_id),
                            ("--result-file", self.result_file)):
            if value:
                args += [flag, value]
        for flag, names in (("--node", self.node_names),
                            ("--intermediate-input", self.intermediate_inputs),
                            ("--intermediate-output", self.intermediate_outputs),
                            ("--versioned-input", self.versioned_inputs)):
            for name in names:
                args += [flag, name]
        if self.params:
            args += ["--params", json.dumps(self.params, sort_keys=True)]
        if self.lineage:
            args.append("--lineage")
        return args

    def command(self, python: str = "python") -> list[str]:
        return [python, "-m", MODULE, *self.arguments()]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=f"python -m {MODULE}",
        description="Run one node task of an Airflow DAG run of a Kedro pipeline, as the DAG's "
                    "node task would (save version, intermediate store, MLflow child run).")
    p.add_argument("--project", required=True, dest="project_path", help="the Kedro project root")
    p.add_argument("--package", dest="package_name", help="its package (default: pyproject.toml's)")
    p.add_argument("--pipeline", default="__default__")
    p.add_argument("--env", help="the Kedro env (default: the project's)")
    p.add_argument("--conf-source")
    p.add_argument("--dag-id", required=True)
    p.add_argument("--run-id", required=True)
    p.add_argument("--run-after", required=True, help="the DAG run's run_after, ISO 8601")
    p.add_argument("--try-number", type=int, default=1)
    p.add_argument("--task-id", required=True)
    p.add_argument("--node", action="append", required=True, dest="node_names",
                   help="a node to run (repeat for a grouped task)")
    p.add_argument("--intermediate-input", action="append", default=[], dest="intermediate_inputs")
    p.add_argument("--intermediate-output", action="append", default=[],
                   dest="intermediate_outputs")
    p.add_argument("--versioned-input", action="append", default=[], dest="versioned_inputs")
    p.add_argument("--parent-run-id", help="the DAG run's MLflow parent run (none: untracked)")
    p.add_argument("--experiment-id")
    p.add_argument("--params", type=_json_object, default={},
                   help="runtime parameters as a JSON object (the DAG run's conf)")
    p.add_argument("--result-file", help="write the MLflow child run and the lineage here (JSON)")
    p.add_argument("--lineage", action="store_true", help="report the nodes' catalog datasets")
    return p


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return value


def invocation_from_args(argv: Sequence[str] | None = None) -> NodeInvocation:
    values = vars(parser().parse_args(argv))
    for name in ("node_names", "intermediate_inputs", "intermediate_outputs", "versioned_inputs"):
        values[name] = tuple(values[name])
    return NodeInvocation(**values)


def read_result(path: str) -> dict[str, Any]:
    """What the runner wrote to ``--result-file`` (empty if it wrote nothing)."""
    try:
        with open(path) as handle:
            value = json.load(handle)
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}

