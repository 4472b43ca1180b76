"""Hand kedro-mlflow's logged-model URIs from the task that saves a model to the tasks that load it.

kedro-mlflow's ``MlflowModelTrackingDataset`` (MLflow 3: a LoggedModel) loads "the model saved
last" from the dataset object's memory, which works in one ``kedro run`` process and nowhere else:
with one Airflow task per node the consumer task has a fresh object and fails with "have saved a
model before". So the producer task records the URI in the DAG run's intermediate store, and a
consumer task hands it back to its dataset before any node input is loaded. Datasets with a
``model_uri`` in their ``load_args`` are left alone.

The URI decides which model a downstream dataset loads, so its file (``<dataset>.model_uri``: the
dataset's name and the URI) is signed like the run's pickles (``IntermediateStore.write_signed``)
and refused, failing the task with a ``DatasetError``, unless its signature is this run's for
that dataset and its name is the dataset's own file name.
"""

from __future__ import annotations

import logging
from typing import Any

from kedro.framework.hooks import hook_impl
from kedro.io import DatasetError

from airflow_kedro_mlflow.compat.kedro_mlflow import (
    last_saved_model_uri,
    set_last_saved_model_uri,
    tracks_logged_models,
    user_defined_model_uri,
)
from airflow_kedro_mlflow.runtime.intermediate import (
    SIGNATURE_HEADER,
    TAG_LENGTH,
    IntermediateStore,
)

log = logging.getLogger(__name__)

SUFFIX = ".model_uri"
KIND = "model_uri"


def _tracks_models(dataset: Any) -> bool:
    return tracks_logged_models(dataset)


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
            name, uri = read_handoff(self._store, path)
            dataset = catalog.get(name) if name in catalog else None
            if (dataset is not None and _tracks_models(dataset)
                    and user_defined_model_uri(dataset) is None):
                set_last_saved_model_uri(dataset, uri)
                log.info("Dataset '%s' loads the model logged upstream: %s", name, uri)

    @hook_impl
    def after_dataset_saved(self, dataset_name: str) -> None:
        dataset = self._catalog.get(dataset_name) if self._catalog is not None else None
        uri = last_saved_model_uri(dataset) if _tracks_models(dataset) else None
        if not uri:
            return
        self._store.write_signed(self._store.path_for(dataset_name, SUFFIX), dataset_name, KIND,
                                 f"{dataset_name}\n{uri}".encode())


def read_handoff(store: IntermediateStore, path: str) -> tuple[str, str]:
    """(dataset name, model URI) of the hand-off file at ``path``, once its signature is checked.

    The file names its dataset; a file whose name is not that dataset's (copied, or planted under
    a name of its own) is refused before its signature is even looked at."""
    store.signing_key()  # no key: fail naming where to set one, before reading anything
    with store.fs.open(path, "rb") as stream:
        data = stream.read()
    body = data[len(SIGNATURE_HEADER) + TAG_LENGTH:] if data.startswith(SIGNATURE_HEADER) else data
    claimed = body.split(b"\n", 1)[0].decode("utf-8", "replace")
    file_name = path.rstrip("/").rsplit("/", 1)[-1]
    if file_name != store.path_for(claimed, SUFFIX).rsplit("/", 1)[-1]:
        raise DatasetError(store.untrusted(
            f"the model URI hand-off file '{file_name}'", path,
            f"it does not hold the hand-off of a dataset of that name (it names '{claimed}')"))
    payload = store.verify(data, claimed, KIND, path,
                           what=f"the model URI hand-off of dataset '{claimed}'")
    name, uri = bytes(payload).decode().split("\n", 1)
    return name, uri
