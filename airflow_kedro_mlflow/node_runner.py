"""Run one node task of a DAG run from a shell: ``python -m airflow_kedro_mlflow.node_runner``
(``--help`` lists the options; ``runtime.invocation`` says what they mean and builds them).

What the isolated execution modes (another virtualenv, a Kubernetes pod) start; it needs Kedro,
the project and this package, not Airflow.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from airflow_kedro_mlflow.runtime.invocation import invocation_from_args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the node; the exit code says how it went (0 ok, 1 failed, 3 try abandoned)."""
    invocation = invocation_from_args(argv)
    from airflow_kedro_mlflow.runtime.isolated import run_invocation

    return run_invocation(invocation)


if __name__ == "__main__":
    sys.exit(main())
