"""Open a Kedro project and session the way both the exporter and the tasks need it.

Kedro configures process-wide logging when it is imported and again when a project is bootstrapped
(``dictConfig`` with its own root handlers). Inside an Airflow task that would detach the root
logger from Airflow's task log (and its secret masker), so the root logger's handlers and level are
restored afterwards; Kedro's own loggers keep propagating into Airflow's.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_kedro_mlflow.compat.dynaconf import settings_loaded_without_reading_source
from airflow_kedro_mlflow.compat.kedro import (
    plugin_hooks_blocked,
    set_save_version,
    use_config_loader,
    without_project_hooks,
)
from airflow_kedro_mlflow.core.errors import ConfigError, ExportError

if TYPE_CHECKING:
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import ProjectMetadata


SESSION_BLOCKED_PLUGINS = ("kedro-telemetry",)
"""Plugins whose session hooks no session of ours loads. kedro-telemetry reports a user's CLI
commands (its CLI hook does that, and stays); its session hook would be imported in every task
(about 60-80 ms) of a DAG run, which is not a user's command."""


@contextlib.contextmanager
def keep_root_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def bootstrap(project_path: Path) -> ProjectMetadata:
    """Make the project's package importable and its settings and pipelines active."""
    # kedro-telemetry would otherwise ask for consent (blocking a task) or call home.
    os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "true")
    with keep_root_logging(), settings_loaded_without_reading_source():
        from kedro.framework.startup import bootstrap_project

        try:
            return bootstrap_project(project_path)
        except RuntimeError as exc:  # Kedro reports a missing/invalid pyproject.toml this way
            raise ExportError(f"{project_path}: not a Kedro project ({exc})") from exc


def conf_source_path(project_path: Path, conf_source: str | None) -> Path:
    """The configuration folder: ``conf_source`` (relative to the project) or the project's own."""
    if conf_source:
        path = Path(conf_source)
        return path if path.is_absolute() else project_path / path
    from kedro.framework.project import settings

    return project_path / settings.CONF_SOURCE


def check_env(project_path: Path, env: str | None, conf_source: str | None) -> None:
    """Fail early on an env with no folder: Kedro would silently run with base config only."""
    if env is None:
        return
    conf = conf_source_path(project_path, conf_source)
    if not (conf / env).is_dir():
        available = sorted(p.name for p in conf.iterdir() if p.is_dir()) if conf.is_dir() else []
        raise ConfigError(
            f"unknown Kedro env '{env}': no folder {conf / env} "
            f"(available: {', '.join(available) or 'none'})"
        )


def create_session(
    project_path: Path,
    *,
    env: str | None,
    conf_source: str | None,
    save_version: str | None = None,
    runtime_params: dict[str, Any] | None = None,
    with_hooks: bool = True,
    loader: Any = None,
) -> KedroSession:
    """A Kedro session; with ``save_version``, every versioned dataset saves under that version.

    Kedro uses the session id as the save version of a run, so pinning the id is how all tasks
    of one DAG run write one version (see ``run_identity.save_version_for``). Without hooks, no
    project or plugin hook runs: exporting must not start MLflow runs or touch data. ``loader``:
    the config loader the task already opened (``config_loader`` with the same env and runtime
    parameters), for the session to read through instead of opening its own.
    """
    from kedro.framework.session import KedroSession

    check_env(project_path, env, conf_source)
    with keep_root_logging(), plugin_hooks_blocked(*SESSION_BLOCKED_PLUGINS):
        session = KedroSession.create(
            project_path=project_path,
            env=env,
            conf_source=str(conf_source_path(project_path, conf_source)) if conf_source else None,
            runtime_params=runtime_params,
            save_on_close=False,
        )
    if not with_hooks:
        without_project_hooks(session)
    if save_version is not None:
        set_save_version(session, save_version)
    if loader is not None:
        use_config_loader(session, loader)
    return session


def config_loader(
    project_path: Path,
    env: str | None,
    conf_source: str | None,
    runtime_params: dict[str, Any] | None = None,
) -> Any:
    """The project's own config loader class, as its settings configure it (no session, no hooks),
    for the env a session would use (``KEDRO_ENV`` when none is given, as in ``kedro run``)."""
    from kedro.framework.project import settings

    return settings.CONFIG_LOADER_CLASS(
        conf_source=str(conf_source_path(project_path, conf_source)),
        env=env or os.getenv("KEDRO_ENV"),
        runtime_params=runtime_params,
        **settings.CONFIG_LOADER_ARGS,
    )


def read_config(loader: Any, key: str, patterns: list[str], source: str) -> dict[str, Any] | None:
    """The merged config files matching ``patterns``; ``None`` when there are none.

    ``source`` names the files in the error raised for malformed YAML or a failed interpolation.
    """
    from kedro.config import MissingConfigException

    loader.config_patterns.setdefault(key, patterns)
    try:
        return dict(loader[key])
    except MissingConfigException:
        return None
    except Exception as exc:
        raise ConfigError(f"{source}: {exc}") from exc


def config_files(conf_source: str | Path, env: str | None, name: str) -> list[Path]:
    """The config files called ``name*`` of a project, in ``base`` and the env (``local`` by
    default), as a user would look for them."""
    root = Path(conf_source)
    return sorted(p for folder in ("base", env or "local")
                  for p in (root / folder).glob(f"**/{name}*") if p.is_file())


def describe_sources(conf_source: str | Path, env: str | None, name: str) -> str:
    """``config_files`` as error messages name them; the usual file when there is none."""
    found = config_files(conf_source, env, name)
    root = Path(conf_source)
    return ", ".join(map(str, found)) if found else f"{root}/{{base,{env or 'local'}}}/{name}.yml"
