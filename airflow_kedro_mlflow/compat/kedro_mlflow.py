"""kedro-mlflow internals: the model URI its model datasets load.

Checked against kedro-mlflow 2.0.3 (``compat.CHECKED``). ``MlflowModelTrackingDataset`` saves a
model into the active run and remembers its URI (``_last_saved_model_uri``) to load it again, in
the same session. A node task downstream runs in another process: the URI is handed over
(``runtime.model_uri_handoff``) and set here, unless the user gave one (``_user_defined_model_uri``).
"""

from __future__ import annotations

from typing import Any


def tracks_logged_models(dataset: Any) -> bool:
    """Whether ``dataset`` is one of kedro-mlflow's datasets that log a model and load it back."""
    return hasattr(dataset, "_last_saved_model_uri") and hasattr(dataset, "model_info")


def last_saved_model_uri(dataset: Any) -> str | None:
    return getattr(dataset, "_last_saved_model_uri", None)


def set_last_saved_model_uri(dataset: Any, uri: str) -> None:
    dataset._last_saved_model_uri = uri


def user_defined_model_uri(dataset: Any) -> str | None:
    return getattr(dataset, "_user_defined_model_uri", None)
