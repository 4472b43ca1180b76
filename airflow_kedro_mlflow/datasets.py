"""Kedro datasets that also record what they save in the active MLflow run.

Inside a node task of an exported DAG the active run is the DAG run's parent run, so metrics and
artifacts land where retrainings are compared. Outside of one (a plain ``kedro run`` with no
MLflow run active) they behave exactly like the dataset they wrap and log nothing: a project can
use them without requiring MLflow tracking everywhere it runs. (kedro-mlflow's datasets work in
exported DAGs too; these exist so a project need not depend on it.)
"""

from __future__ import annotations

import importlib
import logging
import math
import sys
import tempfile
import warnings
from pathlib import Path, PurePosixPath
from typing import Any

from kedro.io import AbstractDataset, DatasetError, Version

from airflow_kedro_mlflow.compat.kedro import (
    filepath_of,
    filesystem_of,
    protocol_of,
    versioned_path,
)

log = logging.getLogger(__name__)


def _active_run() -> Any | None:
    import mlflow

    return mlflow.active_run()


def _wrapped(config: dict[str, Any], version: Version | None) -> AbstractDataset:
    config = dict(config)
    if version is not None:
        config["versioned"] = True
    return AbstractDataset.from_config(
        "wrapped", config, version.load if version else None, version.save if version else None
    )


class MlflowMetricsDataset(AbstractDataset):
    """A flat mapping of numbers, logged as metrics (``<prefix>.<key>``) of the active run.

    ``dataset`` optionally also persists the mapping (e.g. a ``json.JSONDataset``), which is also
    where it is loaded from.
    """

    def __init__(self, prefix: str | None = None, dataset: dict[str, Any] | None = None):
        self._prefix = prefix
        self._dataset = _wrapped(dataset, None) if dataset else None

    def load(self) -> dict[str, float]:
        if self._dataset is not None:
            return self._dataset.load()
        run = _active_run()
        if run is None:
            raise DatasetError("MlflowMetricsDataset without 'dataset' loads from an active MLflow run")
        from mlflow.tracking import MlflowClient

        metrics = MlflowClient().get_run(run.info.run_id).data.metrics
        prefix = f"{self._prefix}." if self._prefix else ""
        return {k.removeprefix(prefix): v for k, v in metrics.items() if k.startswith(prefix)}

    def save(self, data: dict[str, Any]) -> None:
        if not isinstance(data, dict):
            raise DatasetError(f"metrics must be a mapping of names to numbers, got {type(data).__name__}")
        bad = [k for k, v in data.items() if not isinstance(v, (int, float)) or isinstance(v, bool)]
        if bad:
            raise DatasetError(f"metrics must be numbers; not numbers: {', '.join(map(str, bad))}")
        if self._dataset is not None:
            self._dataset.save(data)
        if _active_run() is None:
            log.debug("No active MLflow run: metrics not logged")
            return
        import mlflow

        prefix = f"{self._prefix}." if self._prefix else ""
        mlflow.log_metrics({f"{prefix}{k}": float(v) for k, v in data.items() if math.isfinite(v)})

    def _exists(self) -> bool:
        return self._dataset.exists() if self._dataset is not None else False

    def _describe(self) -> dict[str, Any]:
        return {"prefix": self._prefix, "dataset": self._dataset}


class MlflowArtifactDataset(AbstractDataset):
    """Any file-based Kedro dataset whose saved file is also logged as an artifact of the run.

    ``versioned: true`` on this entry versions the wrapped dataset, so the artifact is exactly
    the version this run saved.
    """

    def __init__(
        self,
        dataset: dict[str, Any],
        artifact_path: str | None = None,
        version: Version | None = None,
    ):
        self._version = version
        self._dataset = _wrapped(dataset, version)
        self._artifact_path = artifact_path

    def load(self) -> Any:
        return self._dataset.load()

    def save(self, data: Any) -> None:
        self._dataset.save(data)
        if _active_run() is None:
            log.debug("No active MLflow run: artifact not logged")
            return
        self._log_saved_file()

    def _saved_path(self) -> str:
        inner: Any = self._dataset
        if self._version is not None and hasattr(inner, "_get_versioned_path"):
            return str(versioned_path(inner, inner.resolve_save_version()))
        filepath = filepath_of(inner)
        if filepath is None:
            raise DatasetError(
                f"{type(inner).__name__} has no file path: MlflowArtifactDataset wraps file datasets"
            )
        return str(filepath)

    def _log_saved_file(self) -> None:
        import mlflow

        path = self._saved_path()
        protocol = protocol_of(self._dataset)
        if protocol in ("file", "local", None):
            mlflow.log_artifact(path, self._artifact_path)
            return
        fs = filesystem_of(self._dataset)
        with tempfile.TemporaryDirectory() as scratch:
            local = Path(scratch) / PurePosixPath(path).name
            fs.get(path, str(local))
            mlflow.log_artifact(str(local), self._artifact_path)

    def _exists(self) -> bool:
        return self._dataset.exists()

    def _release(self) -> None:
        self._dataset.release()

    def _describe(self) -> dict[str, Any]:
        return {"dataset": self._dataset, "artifact_path": self._artifact_path}


def _import_skops_without_probe_warnings() -> None:
    """Import skops (MLflow's default sklearn model format) without its false import warnings.

    When imported, skops names each of scipy's ufuncs by probing *every* loaded module for it
    (``getattr``). In an Airflow task those include Airflow's deprecation shims (such as
    ``airflow.serialization.serde``), which warn on any attribute asked of them: about 1160
    ``DeprecatedImportWarning`` lines, and over a second of logging, in each task that saves or
    loads a sklearn model, for imports nobody made. Only warnings raised at skops' probe are
    ignored, and only during its import; every other warning is reported as usual.
    """
    if "skops.io" in sys.modules:
        return
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"skops\.io\._utils")
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"skops\.io\._utils")
        try:
            import skops.io  # noqa: F401
        except ImportError:  # not installed: MLflow reports it if the format needs it
            pass


def import_flavor(flavor: str) -> Any:
    """The module of an MLflow flavor (``mlflow.sklearn``...), skops' false warnings kept out."""
    if flavor == "mlflow.sklearn":
        _import_skops_without_probe_warnings()
    return importlib.import_module(flavor)


class MlflowModelDataset(AbstractDataset):
    """A model logged as an MLflow Model of a flavor (``mlflow.sklearn``...) in the active run.

    Saving logs the model under ``name`` (an MLflow 3 logged model of the run: what the
    promotion gate of ``airflow.yml`` registers) and, with ``dataset``, also persists it like
    that dataset, which is where downstream nodes load it from (``versioned: true`` keeps each
    run's copy). With ``model_uri`` instead (``models:/wine_classifier@champion``), the dataset is
    read-only and loads that model through the flavor: how an inference pipeline uses the
    registry's champion.
    """

    def __init__(
        self,
        flavor: str = "mlflow.sklearn",
        name: str | None = None,
        dataset: dict[str, Any] | None = None,
        model_uri: str | None = None,
        save_args: dict[str, Any] | None = None,
        load_args: dict[str, Any] | None = None,
        version: Version | None = None,
    ):
        if model_uri is None and dataset is None and not name:
            raise DatasetError("MlflowModelDataset needs 'name' (to log) and/or 'dataset', or 'model_uri'")
        if model_uri is not None and dataset is not None:
            raise DatasetError("MlflowModelDataset takes 'model_uri' (read-only) or 'dataset', not both")
        self._flavor = flavor
        self._name = name
        self._model_uri = model_uri
        self._save_args = dict(save_args or {})
        self._load_args = dict(load_args or {})
        self._dataset = _wrapped(dataset, version) if dataset else None

    def _flavor_module(self) -> Any:
        try:
            return import_flavor(self._flavor)
        except ImportError as exc:
            raise DatasetError(f"MLflow flavor '{self._flavor}' cannot be imported: {exc}") from exc

    def load(self) -> Any:
        if self._model_uri is not None:
            return self._flavor_module().load_model(self._model_uri, **self._load_args)
        if self._dataset is None:
            raise DatasetError(
                f"MlflowModelDataset '{self._name}' has no 'dataset' to load from; set 'model_uri' "
                "to load a logged or registered model"
            )
        return self._dataset.load()

    def save(self, data: Any) -> None:
        if self._model_uri is not None:
            raise DatasetError(f"MlflowModelDataset with model_uri '{self._model_uri}' is read-only")
        if self._dataset is not None:
            self._dataset.save(data)
        if self._name is None or _active_run() is None:
            log.debug("No active MLflow run (or no 'name'): model not logged")
            return
        self._flavor_module().log_model(data, name=self._name, **self._save_args)

    def _exists(self) -> bool:
        return self._dataset.exists() if self._dataset is not None else False

    def _release(self) -> None:
        if self._dataset is not None:
            self._dataset.release()

    def _describe(self) -> dict[str, Any]:
        return {
            "flavor": self._flavor,
            "name": self._name,
            "model_uri": self._model_uri,
            "dataset": self._dataset,
        }
