"""Every use of another project's private or version-specific API, in one place.

Each function here reaches into Kedro, kedro-mlflow, MLflow, Airflow, the Kubernetes client or
dynaconf where no public API does the job; its docstring says why and what was checked
(``CHECKED``: the versions the shim was read against and is tested with). The rest of the
package calls these functions and never touches another project's ``_private`` names (a test
greps for it), so a release that moves one breaks one function here, and
``tests/test_compat.py`` says which and where, instead of a task failing somewhere in a run.

Modules import their dependency lazily where it is optional or heavy.
"""

CHECKED = {
    "kedro": ("1.6.0",),
    "kedro-mlflow": ("2.0.3",),
    "mlflow": ("3.17.2",),
    "apache-airflow-task-sdk": ("1.3.1", "1.3.2"),  # Airflow 3.3.1 or 3.3.2: pip installs either
    "kubernetes": ("36.0.3",),
    "kedro-airflow": ("0.10.0", "0.11.0"),  # pip's resolver installs either in a fresh venv
    "dynaconf": ("3.3.5",),
}
"""The versions every shim was read against and tested with (the test environments')."""
