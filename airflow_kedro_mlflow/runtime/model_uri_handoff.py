"""Hand kedro-mlflow's logged-model URIs from the task that saves a model to the tasks that load it.

kedro-mlflow's ``MlflowModelTrackingDataset`` (MLflow 3: a LoggedModel) loads "the model saved
last" from the dataset object's memory, which works in one ``kedro run`` process and nowhere else:
with one Airflow task per node the consumer task has a fresh object and fails with "have saved a
model before". So the producer task records the URI in the DAG run's intermediate store, and a
consumer task hands it back to its dataset before any node input is loaded. Datasets with a
``model_uri`` in their ``load_args`` are left alone.
"""

from __future__ import annotations

import logging
from typing import Any

from kedro.framework.hooks import hook_impl

from airflow_kedro_mlflow.runtime.intermediate import IntermediateStore

log = logging.getLogger(__name__)

SUFFIX = ".model_uri"


def _tracks_models(dataset: Any) -> bool:
    return hasattr(dataset, "_last_saved_model_uri") and hasattr(dataset, "model_info")


class ModelUriHandoffHooks:
    def __init__(self, store: IntermediateStore):
        self._store = store
        self._catalog: Any = None

    @hook_impl
    def after_catalog_created(self, catalog: Any) -> None:
        self._catalog = catalog
        for path in self._store.files():
            if not path.endswith(SUFFIX):
                continue
            with self._store.fs.open(path, "r") as stream:
                name, uri = stream.read().split("\n", 1)
            dataset = catalog.get(name) if name in catalog else None
            if (dataset is not None and _tracks_models(dataset)
                    and getattr(dataset, "_user_defined_model_uri", None) is None):
                dataset._last_saved_model_uri = uri
                log.info("Dataset '%s' loads the model logged upstream: %s", name, uri)

    @hook_impl
    def after_dataset_saved(self, dataset_name: str) -> None:
        dataset = self._catalog.get(dataset_name) if self._catalog is not None else None
        uri = getattr(dataset, "_last_saved_model_uri", None) if _tracks_models(dataset) else None
        if not uri:
            return
        self._store.fs.makedirs(self._store.prefix, exist_ok=True)
        with self._store.fs.open(self._store.path_for(dataset_name, SUFFIX), "w") as stream:
            stream.write(f"{dataset_name}\n{uri}")
