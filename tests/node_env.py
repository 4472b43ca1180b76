"""A second Python environment for the isolated execution modes: what a user's node image or
virtualenv holds (Kedro, the project's datasets, this package) and nothing of Airflow's."""

from __future__ import annotations

import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# The node runner's own needs (Kedro; pydantic for airflow.yml; httpx for MLflow's REST API)
# and the test projects' datasets, at this environment's versions (pip's cache has them).
PACKAGES = ("kedro", "kedro-datasets", "pydantic", "httpx")


SOURCES = ("setup.cfg", "pyproject.toml", "README.md", "LICENSE", "airflow_kedro_mlflow")
"""What building this package reads: copied, so that two test processes building their node
environments at once never share setuptools' build folders in the checkout."""


def create_node_environment(root: Path) -> Path:
    """A virtualenv at ``root`` with this package installed without its dependencies; its python."""
    subprocess.run([sys.executable, "-m", "venv", str(root)], check=True, capture_output=True)
    python = root / "bin" / "python"
    source = root.parent / "source"
    source.mkdir(exist_ok=True)
    for name in SOURCES:
        copy = shutil.copytree if (REPO / name).is_dir() else shutil.copy2
        copy(REPO / name, source / name)
    pins = [f"{name}=={version(name)}" for name in PACKAGES]
    for args in (pins, ["--no-deps", str(source)]):
        result = subprocess.run([str(python), "-m", "pip", "install", "--quiet", *args],
                                capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    probe = subprocess.run([str(python), "-c", "import airflow"], capture_output=True)
    assert probe.returncode != 0, "the node environment must not have Airflow"
    return python
