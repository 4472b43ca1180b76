"""Read an exported DAG file without running it: its Kedro project and the step of each task.

The parent-run listener runs in Airflow's scheduler and API server, which in Airflow 3 never
execute DAG files (the dag-processor does, in a process of its own): executing one there would
hand whatever can write the DAGs folder the scheduler's database credentials. An exported DAG
file is plain data in Python syntax (``renderer.py``): ``PROJECT = KedroProject(...)`` with
literal arguments, and one ``tasks['<task id>'] = Kedro...Operator(node_name=...)`` per task, so
reading its syntax tree is enough, for files of every version of this package. Light module.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow_kedro_mlflow.core.ids import START_TASK_ID

_STEP_OPERATORS = {"KedroNodeOperator", "KedroNodeVirtualenvOperator", "KedroNodePodOperator",
                   "KedroRunStartOperator",
                   "KedroPromoteModelOperator"}
"""The operators whose tasks are steps of a run (the end task is not: it closes the run)."""


@dataclass(frozen=True)
class ExportedDag:
    """What an exported DAG file says about the Kedro project it runs."""

    project: dict[str, Any]
    """``KedroProject``'s arguments, ``dag_file`` set to the file's path."""
    steps: dict[str, str]
    """Task id -> the step name the end task reports it as (its node names, or its task id)."""


def read_exported_dag(path: str | Path) -> ExportedDag | None:
    """The project and steps of the exported DAG file at ``path``; ``None`` when it is not one
    (no ``KedroProject(...)``) or cannot be read."""
    try:
        tree = ast.parse(Path(path).read_text(encoding="utf-8"), filename=str(path))
    except (OSError, SyntaxError, ValueError):
        return None
    project: dict[str, Any] | None = None
    steps: dict[str, str] = {}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Assign) or not isinstance(node.value, ast.Call):
            continue
        call, name = node.value, _called_name(node.value)
        if name == "KedroProject" and project is None:
            project = {**_literal_keywords(call), "dag_file": str(path)}
        elif name in _STEP_OPERATORS:
            keywords = _literal_keywords(call)
            task_id = _subscript_key(node.targets[0]) or keywords.get("task_id")
            if not isinstance(task_id, str):
                continue
            names = keywords.get("node_names") or (
                [keywords["node_name"]] if keywords.get("node_name") else [])
            steps[task_id] = ",".join(names) if names else task_id
    if project is None or "package_name" not in project or "pipeline" not in project:
        return None
    steps.setdefault(START_TASK_ID, START_TASK_ID)
    return ExportedDag(project, steps)


def step_states(steps: dict[str, str], task_states: dict[str, str | None]) -> dict[str, str | None]:
    """Each step's state from the DAG run's task states (a step with no task instance: None)."""
    return {step: task_states.get(task_id) for task_id, step in steps.items()}


def _called_name(call: ast.Call) -> str | None:
    func = call.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _literal_keywords(call: ast.Call) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for keyword in call.keywords:
        if keyword.arg is None:
            continue
        try:
            values[keyword.arg] = ast.literal_eval(keyword.value)
        except ValueError:  # __file__, Asset(...), a callable: not needed here
            continue
    return values


def _subscript_key(target: ast.expr) -> str | None:
    if isinstance(target, ast.Subscript) and isinstance(target.slice, ast.Constant):
        value = target.slice.value
        return value if isinstance(value, str) else None
    return None
