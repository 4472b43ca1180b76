"""``kedro airflow export``: the Kedro project command that writes DAG files.

kedro-airflow registers a ``kedro airflow`` group too, and Kedro's CLI resolves ``kedro airflow``
to whichever plugin it loads first. So that ``kedro airflow create`` and ``kedro airflow export``
both keep working with both plugins installed, whatever that order, each group lends the other
its commands: ours serves kedro-airflow's commands, and ours (``export``, ``clean-intermediate``)
are added to kedro-airflow's.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator, Sequence
from datetime import UTC
from pathlib import Path
from typing import Any

import click

from airflow_kedro_mlflow.compat.kedro_airflow import airflow_group
from airflow_kedro_mlflow.core.errors import AirflowKedroError

PIPELINE_HELP = (
    "Pipeline to export; repeat, or separate by commas, for several (-p a,b). Default: __default__."
)
TAGS_HELP = "Export only the nodes with one of these tags (repeat, or separate by commas)."
PARAMS_HELP = (
    "airflow.yml keys for this export, over the pipeline's block: key=value pairs separated by "
    "commas (values in YAML: retries=3,catchup=true,tags=[nightly]; promotion.metric=x sets one "
    "key of a mapping)."
)


def _split(values: tuple[str, ...]) -> list[str]:
    """Repeated and comma-separated option values, as kedro-airflow takes them."""
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


class _AirflowGroup(click.Group):
    """Our ``airflow`` group, extended with kedro-airflow's commands when it is installed."""

    def _foreign(self) -> click.Group | None:
        return airflow_group()

    def list_commands(self, ctx: click.Context) -> list[str]:
        foreign = self._foreign()
        names = set(super().list_commands(ctx))
        if foreign is not None:
            names |= set(foreign.list_commands(ctx))
        return sorted(names)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        foreign = self._foreign()
        if command is None and foreign is not None:
            command = foreign.get_command(ctx, cmd_name)
        return command


@click.group(name="Airflow-Kedro-MLflow")
def commands() -> None:
    """Commands of airflow-kedro-mlflow."""


@commands.group(name="airflow", cls=_AirflowGroup)
def airflow_commands() -> None:
    """Run Kedro pipelines on Airflow: `export` writes one DAG file per pipeline (a task per
    node, one MLflow run per DAG run); `create` is kedro-airflow's, when it is installed."""


@airflow_commands.command(name="export")
@click.option("-p", "--pipeline", "--pipelines", "pipelines", multiple=True, help=PIPELINE_HELP)
@click.option("--all", "export_all", is_flag=True, help="Export every registered pipeline.")
@click.option("-e", "--env", default=None, help="Kedro configuration env the DAGs run with.")
@click.option(
    "-t",
    "--target-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder the DAG files are written to. Default: the project's dags/ folder.",
)
@click.option("--conf-source", default=None, help="Kedro configuration folder, if not conf/.")
@click.option("--check", is_flag=True, help="Load the result in an Airflow DagBag; fail on errors.")
@click.option(
    "--group-by",
    type=click.Choice(["memory", "namespace"], case_sensitive=False),
    default=None,
    help="Run several nodes in one task: those joined by in-memory data (memory), or those of one "
    "top-level namespace (namespace). Default: airflow.yml's group_by, else a task per node.",
)
@click.option("--tags", "tags", multiple=True, help=TAGS_HELP)
@click.option("--params", "params", default="", help=PARAMS_HELP)
@click.option("-v", "--verbose", is_flag=True,
              help="Show Kedro's and Airflow's own log lines and warnings (hidden by default).")
@click.pass_obj
def export(
    metadata: Any,
    pipelines: tuple[str, ...],
    export_all: bool,
    env: str | None,
    target_dir: Path | None,
    conf_source: str | None,
    check: bool,
    group_by: str | None,
    tags: tuple[str, ...],
    params: str,
    verbose: bool,
) -> None:
    """Write one Airflow DAG file per Kedro pipeline, one task per node (or group of nodes)."""
    from airflow_kedro_mlflow.config.pipeline import parse_overrides
    from airflow_kedro_mlflow.export.exporter import (
        export_project,
        kedro_mlflow_warnings,
        overlap_warnings,
    )

    names = _split(pipelines)
    if export_all and names:
        raise click.UsageError("use either --pipeline or --all, not both")
    project_path = Path(metadata.project_path)
    target = target_dir or project_path / "dags"
    skipped: list[tuple[str, str]] = []  # --all: the pipelines that only run as part of another
    try:
        with _quiet(not verbose):
            exported = export_project(
                project_path,
                target,
                pipeline_names=names or (None if export_all else ["__default__"]),
                env=env,
                conf_source=conf_source,
                check=check,
                group_by=group_by.lower() if group_by else None,
                tags=_split(tags),
                overrides=parse_overrides(params),
                skipped=skipped if export_all else None,
            )
    except AirflowKedroError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(format_report(exported))
    if check:
        found = ", ".join(f"{item.compiled.manifest.dag_id} ({item.checked_tasks} tasks)"
                          for item in exported)
        click.echo(f"Checked: Airflow's DagBag imports every DAG file with no error: {found}.")
    for name, reason in skipped:
        click.echo(f"Skipped pipeline '{name}': it cannot run on its own: {reason}", err=True)
    warnings_found = [w for item in exported for w in overlap_warnings(item.compiled)]
    warnings_found += kedro_mlflow_warnings(project_path, env, conf_source)
    for warning in warnings_found:
        click.echo(f"Warning: {warning}", err=True)


@contextlib.contextmanager
def _quiet(enabled: bool) -> Iterator[None]:
    """Keep Kedro's and Airflow's log lines and warnings (project loading, config resolvers,
    the DagBag of ``--check``) out of the export's output, so what it prints is its result or
    its one-line error. (Airflow logs through structlog, to the standard streams.)"""
    if not enabled:
        yield
        return
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(logging.NOTSET)


@airflow_commands.command(name="clean-intermediate")
@click.option("-p", "--pipeline", "pipelines", multiple=True,
              help="Pipeline whose DAG's data to look at; repeat for several. Default: all.")
@click.option("-e", "--env", default=None, help="Kedro configuration env the DAGs run with.")
@click.option("--conf-source", default=None, help="Kedro configuration folder, if not conf/.")
@click.option("--older-than", default=None,
              help="Only runs that ended longer ago than this: 12h, 7d, 2w. Default: each DAG's "
                   "airflow.yml 'intermediate_retention' (7d unless set).")
@click.option("--include-unfinished", is_flag=True,
              help="Also runs with no end record (their end task never ran), by their newest file.")
@click.option("--delete", is_flag=True, help="Remove them. Without it, only list (dry run).")
@click.pass_obj
def clean_intermediate(
    metadata: Any,
    pipelines: tuple[str, ...],
    env: str | None,
    conf_source: str | None,
    older_than: str | None,
    include_unfinished: bool,
    delete: bool,
) -> None:
    """List, and with --delete remove, the intermediate data that finished DAG runs left behind.

    A DAG run keeps its intermediate data when it ends so that any of its tasks can be cleared
    and rerun; this removes it once it is older than the DAG's retention (or --older-than).
    Runs still in progress are never touched.
    """
    from datetime import datetime

    from airflow_kedro_mlflow.runtime.housekeeping import (
        parse_age,
        project_stores,
        removable,
        remove_run_folders,
        run_folders,
    )

    try:
        age = parse_age(older_than) if older_than is not None else None
        stores = project_stores(Path(metadata.project_path), list(pipelines) or None, env,
                                conf_source)
        now = datetime.now(UTC)
        rows = [("run data", "ended", "failed steps", "size", "action")]
        count = 0
        doomed: list[tuple[Any, Any]] = []
        folders = [(store, folder, retention) for store, dag_folders in stores
                   for dag_folder, retention in dag_folders
                   for folder in run_folders(store, [dag_folder])]
        for store, folder, retention in folders:
            wanted = removable(folder, age if age is not None else retention,
                               include_unfinished, now)
            if wanted:
                doomed.append((store, folder))
            count += wanted
            folder_age = folder.age(now)
            rows.append((
                folder.url,
                f"{_days(folder_age)} ago" if folder.ended_at else "no end record",
                ", ".join(folder.unsuccessful) or "-",
                f"{folder.size} B",
                ("removed" if delete else "would remove") if wanted else "kept",
            ))
        if delete:  # every folder is checked (UnsafeRemovalError) before any is removed
            remove_run_folders(doomed)
    except AirflowKedroError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(_table(rows))
    verb = "Removed" if delete else "Would remove (dry run; add --delete)"
    limit = older_than or "their DAG's intermediate_retention"
    click.echo(f"{verb}: {count} run folder(s) older than {limit}.")


def _days(age: Any) -> str:
    if age is None:
        return "?"
    hours = age.total_seconds() / 3600
    return f"{hours / 24:.1f}d" if hours >= 24 else f"{hours:.1f}h"


def _table(rows: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def airflow_task_count(compiled: Any) -> int:
    """The tasks of the DAG as Airflow shows them: the node tasks, the start and end tasks and
    the promotion gate if there is one."""
    return len(compiled.manifest.tasks) + 2 + (1 if compiled.settings.promotion else 0)


def format_report(exported: list[Any]) -> str:
    """A table of the DAGs written, then each DAG's tasks and their upstream tasks."""
    rows = [("DAG", "file", "tasks", "edges", "status")]
    for item in exported:
        manifest = item.compiled.manifest
        rows.append(
            (
                manifest.dag_id,
                str(item.path),
                str(airflow_task_count(item.compiled)),
                str(len(manifest.edges())),
                "written" if item.changed else "unchanged",
            )
        )
    lines = [_table(rows)]
    for item in exported:
        manifest = item.compiled.manifest
        lines += ["", f"{manifest.dag_id}:"]
        for task in manifest.tasks:
            after = ", ".join(task.upstream)
            lines.append(f"  {task.full_task_id}" + (f"  <- {after}" if after else ""))
    return "\n".join(lines)


def _lend_commands_to_kedro_airflow() -> None:
    foreign = airflow_group()
    if foreign is not None:
        for name, command in airflow_commands.commands.items():
            if name not in foreign.commands:
                foreign.add_command(command)
        # Kedro may show either group as `kedro airflow`: both describe the commands they hold
        foreign.help = airflow_commands.help


_lend_commands_to_kedro_airflow()
