"""Nodes of the ``data_processing`` pipeline.

The data comes from ``sklearn.datasets.load_wine``, which ships inside
scikit-learn, so the project never needs network access.
"""

from __future__ import annotations

import re
from typing import Any

import pandas as pd
from sklearn.datasets import load_wine
from sklearn.model_selection import train_test_split

TARGET = "target"
"""Name of the label column; fixed by ``load_wine(as_frame=True)``."""


def load_wine_data() -> pd.DataFrame:
    """Load the bundled UCI wine data: 178 rows, 13 features and ``target``.

    A source node with no inputs: the "raw" layer is produced by the pipeline
    itself and persisted to CSV, so downstream runs and tasks can read it back.
    """
    return load_wine(as_frame=True).frame


def _to_snake_case(name: str) -> str:
    return re.sub(r"[^0-9a-zA-Z]+", "_", name).strip("_").lower()


def clean_data(wine_raw: pd.DataFrame, cleaning: dict[str, Any]) -> pd.DataFrame:
    """Make the raw frame safe for modelling.

    - column names become snake_case (the raw data has
      ``od280/od315_of_diluted_wines``, awkward in code and in some file formats);
    - rows with missing values are dropped if ``cleaning["dropna"]``;
    - every feature is clipped to its ``[lower, upper]`` quantiles from
      ``cleaning["clip_quantiles"]`` to tame outliers. The label is left alone.
    """
    df = wine_raw.rename(columns=_to_snake_case)
    if cleaning.get("dropna", True):
        df = df.dropna()

    quantiles = cleaning["clip_quantiles"]
    features = df.columns.drop(TARGET)
    lower = df[features].quantile(quantiles["lower"])
    upper = df[features].quantile(quantiles["upper"])
    df[features] = df[features].clip(lower=lower, upper=upper, axis=1)

    df[TARGET] = df[TARGET].astype("int64")
    return df.reset_index(drop=True)


def split_data(
    wine_clean: pd.DataFrame, split: dict[str, Any]
) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series, pd.Series]:
    """Split into train and test sets, seeded so that every run is identical.

    Stratifying on the label (``split["stratify"]``) keeps the three classes in
    the same proportions in both sets, which matters with only 178 rows.

    Returns:
        ``X_train, X_test, y_train, y_test``; the ``y`` values are Series.
    """
    X = wine_clean.drop(columns=TARGET)
    y = wine_clean[TARGET]
    X_train, X_test, y_train, y_test = train_test_split(
        X,
        y,
        test_size=split["test_size"],
        random_state=split["random_state"],
        stratify=y if split.get("stratify", False) else None,
    )
    return X_train, X_test, y_train, y_test
