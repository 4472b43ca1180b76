"""Small Kedro projects written by the tests, for cases the example project must not contain
(nodes that fail on purpose, colliding names, empty pipelines)."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import yaml

RELAY_NODES = '''
"""Nodes that pass plain Python objects to each other in memory."""

from pathlib import Path


def make_numbers(count: int) -> list[int]:
    return list(range(count))


def split_parity(numbers: list[int]) -> tuple[list[int], list[int]]:
    return [n for n in numbers if n % 2 == 0], [n for n in numbers if n % 2]


def summarize(evens: list[int], odds: list[int], fail: bool) -> dict:
    if fail:
        raise RuntimeError("planned failure in summarize")
    return {"evens": sum(evens), "odds": sum(odds), "count": len(evens) + len(odds)}


def report(summary: dict, fail_marker: str, fail_once_marker: str) -> dict:
    """Fails while ``fail_marker`` exists; fails once, creating it, if ``fail_once_marker`` does not."""
    if fail_marker and Path(fail_marker).exists():
        raise RuntimeError(f"planned failure in report: {fail_marker} exists")
    if fail_once_marker and not Path(fail_once_marker).exists():
        Path(fail_once_marker).touch()
        raise RuntimeError("planned failure in report, on its first try only")
    return {"total": summary["evens"] + summary["odds"], "count": summary["count"]}
'''

RELAY_REGISTRY = '''
from kedro.pipeline import Pipeline, node

from {package}.nodes import make_numbers, report, split_parity, summarize


def register_pipelines():
    relay = Pipeline(
        [
            node(make_numbers, "params:count", "numbers", name="make_numbers"),
            node(split_parity, "numbers", ["evens", "odds"], name="split_parity"),
            node(summarize, ["evens", "odds", "params:fail"], "summary", name="summarize",
                 tags=["heavy"]),
            node(report, ["summary", "params:fail_marker", "params:fail_once_marker"], "report",
                 name="report"),
        ]
    )
    return {{"__default__": relay, "relay": relay, "empty": Pipeline([])}}
'''

RELAY_CATALOG = {
    "summary": {"type": "json.JSONDataset", "filepath": "data/summary.json", "versioned": True},
    "report": {"type": "json.JSONDataset", "filepath": "data/report.json"},
}
RELAY_PARAMETERS = {"count": 10, "fail": False, "fail_marker": "", "fail_once_marker": ""}


def write_project(
    root: Path,
    package: str,
    nodes_source: str,
    registry_source: str,
    catalog: dict[str, Any] | None = None,
    parameters: dict[str, Any] | None = None,
    extra_conf: dict[str, dict[str, Any]] | None = None,
) -> Path:
    """Write a minimal Kedro 1.x project at ``root/package`` and return its path."""
    project = root / package
    source = project / "src" / package
    source.mkdir(parents=True)
    (project / "conf" / "base").mkdir(parents=True)
    (project / "conf" / "local").mkdir()
    (project / "data").mkdir()
    (project / ".telemetry").write_text("consent: false\n")
    (project / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""
            [tool.kedro]
            package_name = "{package}"
            project_name = "{package}"
            kedro_init_version = "1.7.0"
            source_dir = "src"
            """
        )
    )
    (source / "__init__.py").write_text('__version__ = "0.1.0"\n')
    (source / "settings.py").write_text('"""Default settings."""\n')
    (source / "nodes.py").write_text(textwrap.dedent(nodes_source))
    (source / "pipeline_registry.py").write_text(
        textwrap.dedent(registry_source).format(package=package)
    )
    conf = {"catalog.yml": catalog or {}, "parameters.yml": parameters or {}, **(extra_conf or {})}
    for name, content in conf.items():
        (project / "conf" / "base" / name).write_text(yaml.safe_dump(content))
    return project


def relay_project(root: Path, package: str = "relay", **overrides: Any) -> Path:
    """A four-node chain passing in-memory lists and dicts, with a versioned JSON in the middle."""
    return write_project(
        root,
        package,
        RELAY_NODES,
        RELAY_REGISTRY,
        catalog=overrides.pop("catalog", RELAY_CATALOG),
        parameters=overrides.pop("parameters", RELAY_PARAMETERS),
        **overrides,
    )


KEDRO_MLFLOW_NODES = '''
"""Nodes whose outputs are kedro-mlflow datasets: a model, a metrics history and an artifact."""

import os

from sklearn.linear_model import LinearRegression


def fit(count: int):
    xs = [[float(x)] for x in range(count)]
    return LinearRegression().fit(xs, [2.0 * x[0] + 1.0 for x in xs])


def score(model, count: int):
    slope = float(model.coef_[0])
    exported = os.environ.get("AKM_PROBE") == "from-credentials"
    return {"slope": {"value": slope, "step": 0}}, f"slope={slope:.3f} exported={exported}"
'''

KEDRO_MLFLOW_REGISTRY = '''
from kedro.pipeline import Pipeline, node

from {package}.nodes import fit, score


def register_pipelines():
    pipeline = Pipeline([
        node(fit, "params:count", "model", name="fit"),
        node(score, ["model", "params:count"], ["metrics", "notes"], name="score"),
    ])
    return {{"__default__": pipeline}}
'''

KEDRO_MLFLOW_CATALOG = {
    "model": {"type": "kedro_mlflow.io.models.MlflowModelTrackingDataset", "flavor": "mlflow.sklearn"},
    "metrics": {"type": "kedro_mlflow.io.metrics.MlflowMetricsHistoryDataset"},
    "notes": {
        "type": "kedro_mlflow.io.artifacts.MlflowArtifactDataset",
        "dataset": {"type": "text.TextDataset", "filepath": "data/notes.txt"},
    },
}


def kedro_mlflow_project(root: Path, package: str = "kmlflow") -> Path:
    """A project written the kedro-mlflow way: its datasets, its hook, its config."""
    return write_project(root, package, KEDRO_MLFLOW_NODES, KEDRO_MLFLOW_REGISTRY,
                         catalog=KEDRO_MLFLOW_CATALOG, parameters={"count": 5})


WHERE_NODES = '''
"""Nodes that report which Python ran them."""

import sys


def make_numbers(count: int) -> list[int]:
    return list(range(count))


def locate(numbers: list[int]) -> dict:
    return {"executable": sys.executable, "prefix": sys.prefix, "total": sum(numbers)}


def report(where: dict) -> dict:
    return {"ran_in": where["prefix"], "total": where["total"], "reporter": sys.prefix}
'''

WHERE_REGISTRY = '''
from kedro.pipeline import Pipeline, node

from {package}.nodes import locate, make_numbers, report


def register_pipelines():
    where = Pipeline([
        node(make_numbers, "params:count", "numbers", name="make_numbers"),
        node(locate, "numbers", "where", name="locate", tags=["isolated"]),
        node(report, "where", "report", name="report"),
    ])
    return {{"__default__": where}}
'''

WHERE_CATALOG = {
    "where": {"type": "json.JSONDataset", "filepath": "data/where.json", "versioned": True},
    "report": {"type": "json.JSONDataset", "filepath": "data/report.json"},
}


def where_project(root: Path, execution: dict, mlflow_url: str | None = None,
                  experiment: str | None = None) -> Path:
    """Three nodes; the middle one, tagged ``isolated`` and run as ``execution`` says, reports
    the ``sys.prefix`` of the environment that ran it."""
    extra = {"airflow.yml": {"default": {"execution": {"isolated": execution}}}}
    if mlflow_url:
        extra["mlflow.yml"] = {"server": {"mlflow_tracking_uri": mlflow_url},
                               "tracking": {"experiment": {"name": experiment}}}
    return write_project(root, "where", WHERE_NODES, WHERE_REGISTRY, catalog=WHERE_CATALOG,
                         parameters={"count": 5}, extra_conf=extra)


PLANTED_NODES = '''
"""Nodes of a project whose configuration holds credentials in every place users put them."""


def make_numbers(count: int) -> list[int]:
    return list(range(count))


def locate(numbers: list[int]) -> dict:
    """Runs in the node runner (another virtualenv): what that process was started with."""
    with open("/proc/self/environ", "rb") as handle:
        started_with = handle.read().decode(errors="replace")
    return {"total": sum(numbers), "environ": started_with}


def notify(numbers: list[int]) -> str:
    return f"{len(numbers)} numbers"
'''

PLANTED_DATASETS = '''
"""A dataset that pretends to post a notice, and logs where it posts: what a careless custom
dataset does. Airflow's secret masker must hide the URLs its credentials hold."""

import logging

from kedro.io import AbstractDataset


class Notice(AbstractDataset):
    def __init__(self, filepath: str, credentials: dict | None = None) -> None:
        self._filepath = filepath
        self._credentials = credentials or {}

    def _describe(self) -> dict:
        return {"filepath": self._filepath}

    def load(self) -> str:
        return ""

    def save(self, data: str) -> None:
        logging.getLogger(__name__).info(
            "Posting %r to %s and %s", data, self._credentials["webhook_url"],
            self._credentials["sas_url"])
'''

PLANTED_REGISTRY = '''
from kedro.pipeline import Pipeline, node

from {package}.nodes import locate, make_numbers, notify


def register_pipelines():
    planted = Pipeline([
        node(make_numbers, "params:count", "numbers", name="make_numbers"),
        node(locate, "numbers", "where", name="locate", tags=["isolated"]),
        node(notify, "numbers", "notice", name="notify"),
    ])
    return {{"__default__": planted}}
'''


def planted_project(root: Path, python: str, mlflow_uri: str, planted: dict[str, str],
                    package: str = "planted") -> Path:
    """Credentials where users put them: user-info in the tracking URI (mlflow.yml) and in a
    catalog path, a webhook URL and an Azure SAS URL in ``credentials.yml``; one node in the
    virtualenv runner. ``planted``: ``mlflow_password``, ``catalog_token``, ``webhook``,
    ``sas_signature``."""
    catalog = {
        "where": {"type": "json.JSONDataset", "filepath": "data/where.json"},
        "notice": {"type": f"{package}.datasets.Notice", "credentials": "notify",
                   "filepath": f"https://planted-user:{planted['catalog_token']}@127.0.0.1:9/"
                               "notices/notice.json"},
    }
    scheme, _, server = mlflow_uri.partition("://")
    extra = {
        "airflow.yml": {"default": {"execution": {"isolated": {"mode": "virtualenv",
                                                               "python": python}}}},
        "mlflow.yml": {"server": {"mlflow_tracking_uri":
                                  f"{scheme}://planted-user:{planted['mlflow_password']}@{server}"},
                       "tracking": {"experiment": {"name": package}}},
    }
    project = write_project(root, package, PLANTED_NODES, PLANTED_REGISTRY, catalog=catalog,
                            parameters={"count": 5}, extra_conf=extra)
    (project / "src" / package / "datasets.py").write_text(textwrap.dedent(PLANTED_DATASETS))
    (project / "conf" / "local" / "credentials.yml").write_text(yaml.safe_dump({"notify": {
        "webhook_url": f"https://hooks.slack.com/services/T000/B000/{planted['webhook']}",
        "sas_url": "https://account.blob.core.windows.net/notices?sv=2024-05-04&sp=w"
                   f"&sig={planted['sas_signature']}",
    }}))
    return project
