"""A Kedro hook that kills or pauses a chosen try of a chosen task, for the fault tests.

It is copied into the test's copy of the example project and listed in its ``settings.HOOKS``, so
faults happen at real lines of a real task process: right after a dataset was saved, right before
one is saved, once the catalog exists (in the start task: after it opened the parent run), or
when the project's settings are loaded (``settings_loaded``: every task that opens the project,
the end task included, which runs no Kedro session).
The faults are read from the JSON file ``$AKM_FAULTS``: a list of
``{"id", "dag_run", "task", "tries": [..], "at", "dataset", "action", "go"}`` with ``action`` one of
``kill_self`` (SIGKILL of the task process), ``kill_supervisor`` (SIGKILL of its parent, the
Airflow supervisor: the task process lives on as an orphan), ``kill_supervisor_and_wait`` (the
same, then the orphan waits for ``go`` inside its save), ``raise`` (the node fails with an
error) and ``wait`` (until the file ``go`` exists); ``plant_column`` adds that column to the
DataFrame the try is about to save, to tell its data from another try's. Each firing leaves
``<id>.try<N>.fired`` beside the file.
"""

import json
import os
import signal
import time
from pathlib import Path

from kedro.framework.hooks import hook_impl


class FaultInjection:
    def __init__(self) -> None:  # settings.py builds the hook as Kedro loads the settings
        self._fire("settings_loaded")

    def _fire(self, at: str, dataset: str | None = None, data=None) -> None:
        spec_file = os.environ.get("AKM_FAULTS")
        if not spec_file or not Path(spec_file).exists():
            return
        task = os.environ.get("AIRFLOW_CTX_TASK_ID")
        dag_run = os.environ.get("AIRFLOW_CTX_DAG_RUN_ID")
        try_number = int(os.environ.get("AIRFLOW_CTX_TRY_NUMBER") or 0)
        for fault in json.loads(Path(spec_file).read_text()):
            if (fault["at"], fault["task"], fault["dag_run"]) != (at, task, dag_run):
                continue
            if fault.get("dataset") not in (None, dataset) or try_number not in fault["tries"]:
                continue
            Path(spec_file).with_name(f"{fault['id']}.try{try_number}.fired").write_text(
                str(os.getpid()))
            if fault.get("plant_column") and data is not None:  # marks what this try saves
                data[fault["plant_column"]] = 1
            if fault["action"] == "kill_self":
                os.kill(os.getpid(), signal.SIGKILL)
            elif fault["action"] in ("kill_supervisor", "kill_supervisor_and_wait"):
                os.kill(os.getppid(), signal.SIGKILL)
                time.sleep(1)  # let the orphan be re-parented before it goes on
                if fault["action"] == "kill_supervisor_and_wait":  # an orphan in a long save
                    _wait_for(fault["go"])
            elif fault["action"] == "raise":
                raise RuntimeError(f"fault {fault['id']}: planted failure of {task}")
            elif fault["action"] == "wait":
                _wait_for(fault["go"])

    @hook_impl
    def after_catalog_created(self) -> None:
        self._fire("after_catalog_created")

    @hook_impl
    def before_dataset_saved(self, dataset_name: str, data) -> None:
        self._fire("before_dataset_saved", dataset_name, data)

    @hook_impl
    def after_dataset_saved(self, dataset_name: str) -> None:
        self._fire("after_dataset_saved", dataset_name)


def _wait_for(go: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not Path(go).exists() and time.monotonic() < deadline:
        time.sleep(0.2)
