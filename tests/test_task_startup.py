"""Fast tests of what a task skips when it opens a Kedro project, and that Kedro behaves the same."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def _run(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip().splitlines()[-1]


def test_parameters_are_copied_as_before_without_importing_pandas():
    out = _run(
        """
        import sys
        from airflow_kedro_mlflow.runtime.kedro_startup import infer_copy_mode_without_imports
        infer_copy_mode_without_imports()
        from kedro.io import MemoryDataset
        dataset = MemoryDataset({"layers": [1, 2]})
        loaded = dataset.load()
        loaded["layers"].append(3)  # a node mutating its input must not change the parameter
        assert dataset.load() == {"layers": [1, 2]}
        print(sorted({"pandas", "numpy", "ibis"} & set(sys.modules)))
        """
    )
    assert out == "[]"


def test_frames_keep_kedros_copy_mode_once_pandas_is_loaded():
    out = _run(
        """
        import pandas as pd
        from airflow_kedro_mlflow.runtime.kedro_startup import infer_copy_mode_without_imports
        infer_copy_mode_without_imports()
        infer_copy_mode_without_imports()  # idempotent
        from kedro.io import memory_dataset
        frame = pd.DataFrame({"x": [1]})
        print(memory_dataset._infer_copy_mode(frame), memory_dataset._infer_copy_mode({"a": 1}),
              memory_dataset._infer_copy_mode.__wrapped__.__module__)
        """
    )
    assert out == "copy deepcopy kedro.io.memory_dataset"
