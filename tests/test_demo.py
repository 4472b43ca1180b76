"""The README's first command, twice in a row, exactly as a new user runs it."""

from __future__ import annotations

import os
import subprocess

import pytest
from conftest import REPO

pytestmark = pytest.mark.slow


def test_demo_runs_twice_in_a_row():
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AIRFLOW", "MLFLOW", "WINE_"))}  # a user's shell, not the tests'
    for attempt in (1, 2):
        done = subprocess.run(["./scripts/demo.sh"], cwd=REPO, env=env, capture_output=True,
                              text=True, timeout=900)
        output = done.stdout + done.stderr
        assert done.returncode == 0, f"demo run {attempt} failed:\n{output[-6000:]}"
        assert "dag_id=wine_classifier__inference_s3" in output and "state=success" in output
        # the first training run makes a champion, the weaker second one is kept out
        assert "Promotion gate: promoted" in output, output[-3000:]
        assert "Promotion gate: kept out" in output, output[-3000:]
