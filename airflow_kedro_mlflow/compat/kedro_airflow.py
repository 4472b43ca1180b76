"""kedro-airflow's ``airflow`` command group.

Checked against kedro-airflow 0.11.0 (``compat.CHECKED``). Both plugins add an ``airflow`` group
to ``kedro``; Kedro shows one of them. Ours lists kedro-airflow's commands too, and lends ours to
its group (``kedro_airflow.plugin.airflow_commands``, a click group), so either way both sets
of commands answer.
"""

from __future__ import annotations

from typing import Any


def airflow_group() -> Any:
    """kedro-airflow's click group, or None when kedro-airflow is absent or changed."""
    import click

    try:
        from kedro_airflow.plugin import airflow_commands
    except Exception:
        return None
    return airflow_commands if isinstance(airflow_commands, click.Group) else None
