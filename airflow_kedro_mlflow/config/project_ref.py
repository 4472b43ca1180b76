"""How an exported DAG file refers to its Kedro project without embedding a machine's paths.

The DAG file records the project's path relative to the DAG file's own folder, which holds
whenever ``dags/`` and the project are deployed side by side. Where they are not (a worker image
with the project installed elsewhere), an Airflow Variable — or the equivalent environment variable
``AIRFLOW_VAR_KEDRO_PROJECT_PATH_<PACKAGE>`` — says where it is. Resolution happens inside the task,
never at parse time, so parsing stays free of metadata-DB calls. Light module: no Kedro imports.
"""

from __future__ import annotations

import os
from pathlib import Path

from airflow_kedro_mlflow.core.errors import ProjectNotFoundError


class KedroProject:
    """The Kedro project, pipeline, env and conf source a DAG runs.

    ``path`` is the project root, relative to the folder of ``dag_file`` (or absolute);
    ``conf_source`` a conf folder relative to the project root (or absolute), ``None`` for the
    project's own. A plain immutable class rather than a dataclass: every DAG file builds one at
    parse time, and generating a dataclass costs more than parsing a small DAG's tasks.
    """

    __slots__ = ("package_name", "pipeline", "path", "dag_file", "env", "conf_source")
    package_name: str
    pipeline: str
    path: str
    dag_file: str
    env: str | None
    conf_source: str | None

    def __init__(
        self,
        package_name: str,
        pipeline: str,
        path: str,
        dag_file: str,
        env: str | None = None,
        conf_source: str | None = None,
    ) -> None:
        values = (package_name, pipeline, path, dag_file, env, conf_source)
        for name, value in zip(self.__slots__, values, strict=True):
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"KedroProject is immutable: cannot set '{name}'")

    def _values(self) -> tuple[str | None, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, KedroProject) and self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"KedroProject({fields})"

    @property
    def variable_name(self) -> str:
        return f"kedro_project_path_{self.package_name}"

    def locate(self, ask_airflow: bool = True) -> Path:
        """The project root on this machine: the Airflow Variable if set, else the relative path.

        ``ask_airflow=False``: outside a task (no Task SDK to ask), only the Variable's
        ``AIRFLOW_VAR_...`` environment variable counts, and Airflow is not imported."""
        configured = _variable(self.variable_name, ask_airflow)
        if configured:
            root, origin = Path(configured), f"Airflow Variable '{self.variable_name}'"
        else:
            root = Path(os.path.dirname(os.path.abspath(self.dag_file)), self.path)
            origin = f"path '{self.path}' relative to {self.dag_file}"
        root = root.resolve()
        if not (root / "pyproject.toml").is_file():
            raise ProjectNotFoundError(
                f"Kedro project '{self.package_name}' not found at {root} (from {origin}): "
                f"set the Airflow Variable '{self.variable_name}' to the project root"
            )
        return root


def _variable(name: str, ask_airflow: bool = True) -> str | None:
    env_value = os.environ.get(f"AIRFLOW_VAR_{name.upper()}")
    if env_value or not ask_airflow:
        return env_value
    try:
        from airflow.sdk import Variable

        return Variable.get(name, default=None)
    except Exception:  # outside a task (no supervisor to ask), or no such variable
        return None
