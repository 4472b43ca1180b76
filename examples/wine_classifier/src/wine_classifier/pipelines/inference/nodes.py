"""Nodes of the ``inference`` pipeline."""

from __future__ import annotations

import pandas as pd
from sklearn.base import ClassifierMixin

from wine_classifier.pipelines.data_processing.nodes import TARGET, _to_snake_case


def prepare_features(wine_raw: pd.DataFrame) -> pd.DataFrame:
    """The feature columns, named as in training (snake_case), without the label."""
    features = wine_raw.rename(columns=_to_snake_case)
    return features.drop(columns=[TARGET], errors="ignore")


def predict(model: ClassifierMixin, features: pd.DataFrame) -> pd.DataFrame:
    """One predicted cultivar per row, in the input's order."""
    return pd.DataFrame({"prediction": model.predict(features).astype("int64")})
