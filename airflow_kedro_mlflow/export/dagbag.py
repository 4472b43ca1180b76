"""Airflow's ``DagBag``, wherever the installed Airflow keeps it (it moved in Airflow 3.2)."""

from __future__ import annotations

import os
from pathlib import Path


def load_dagbag(folder: Path):
    """``folder`` (a DAG file or a folder of them) parsed as Airflow's DAG processor parses it."""
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow < 3.2
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]
    return DagBag(dag_folder=str(folder), safe_mode=False)
