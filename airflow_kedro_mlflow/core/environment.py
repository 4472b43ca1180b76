"""What a process this package starts inherits from an Airflow process: its environment without
Airflow's own secrets.

Airflow's components hold secrets in their environment that nothing of a Kedro project needs:
the metadata database URL, the JWT and Fernet keys, the broker's URL, and a Connection per
``AIRFLOW_CONN_<ID>``. The node runner (the virtualenv mode, on a worker) and the process that
settles a parent run (from the scheduler) run project code, so they get the environment less
those: the project's own variables (what ``credentials.yml`` reads) stay. Light module.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

_AIRFLOW_SECRET_SETTING = re.compile(
    r"^AIRFLOW__.*(SQL_ALCHEMY|DATABASE__|JWT|FERNET|SECRET|PASSWORD|TOKEN|BROKER_URL|"
    r"RESULT_BACKEND|_CMD$)", re.I)
_CONNECTION = "AIRFLOW_CONN_"


def without_airflow_secrets(
    environ: Mapping[str, str], connections: Iterable[str] | None = None
) -> dict[str, str]:
    """``environ`` without Airflow's secret settings and, unless ``connections`` is ``None``,
    without every ``AIRFLOW_CONN_<ID>`` but those of the Connection ids in ``connections``."""
    keep = None if connections is None else {f"{_CONNECTION}{c.upper()}" for c in connections}
    return {
        name: value for name, value in environ.items()
        if not _AIRFLOW_SECRET_SETTING.match(name)
        and (keep is None or not name.upper().startswith(_CONNECTION) or name.upper() in keep)
    }
