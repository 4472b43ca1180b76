"""Nodes of the ``model_training`` pipeline template.

The same two functions serve every namespace; which estimator is built is a
matter of configuration (``model_options.estimator``), not of code.
"""

from __future__ import annotations

from typing import Any

import matplotlib

# Headless backend: nodes run in workers (e.g. Airflow tasks) without a display.
matplotlib.use("Agg")

import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from sklearn.base import ClassifierMixin  # noqa: E402
from sklearn.ensemble import RandomForestClassifier  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.metrics import (  # noqa: E402
    ConfusionMatrixDisplay,
    accuracy_score,
    f1_score,
    precision_score,
    recall_score,
)
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402


def _random_forest(**options: Any) -> ClassifierMixin:
    return RandomForestClassifier(**options)


def _logistic_regression(**options: Any) -> ClassifierMixin:
    # The wine features span several orders of magnitude (proline ~1000,
    # hue ~1); without scaling lbfgs does not converge.
    return make_pipeline(StandardScaler(), LogisticRegression(**options))


ESTIMATORS = {
    "random_forest": _random_forest,
    "logistic_regression": _logistic_regression,
}


def train_model(
    X_train: pd.DataFrame, y_train: pd.Series, model_options: dict[str, Any]
) -> ClassifierMixin:
    """Build the estimator named by ``model_options["estimator"]`` and fit it.

    All other keys of ``model_options`` are passed to the estimator as
    hyperparameters; seeds come from there too, so training is reproducible.
    """
    options = dict(model_options)
    estimator = ESTIMATORS[options.pop("estimator")](**options)
    return estimator.fit(X_train, y_train)


def evaluate_model(
    model: ClassifierMixin, X_test: pd.DataFrame, y_test: pd.Series
) -> tuple[dict[str, float], Figure]:
    """Score the model on the held-out set.

    Returns:
        A flat dict of macro-averaged metrics (plain floats rounded to 6 digits,
        so the JSON is stable and easy to log, e.g. to MLflow), and a confusion
        matrix figure. The figure is created without pyplot, so no global
        figure state leaks between nodes; the dataset writes it to PNG.
    """
    y_pred = model.predict(X_test)
    scores = {
        "accuracy": accuracy_score(y_test, y_pred),
        "f1_macro": f1_score(y_test, y_pred, average="macro"),
        "precision_macro": precision_score(
            y_test, y_pred, average="macro", zero_division=0
        ),
        "recall_macro": recall_score(y_test, y_pred, average="macro"),
    }
    metrics = {name: round(float(value), 6) for name, value in scores.items()}

    figure = Figure(figsize=(5, 4))
    ax = figure.add_subplot()
    ConfusionMatrixDisplay.from_predictions(
        y_test, y_pred, labels=list(model.classes_), ax=ax, colorbar=False
    )
    ax.set_title(f"Confusion matrix (accuracy {metrics['accuracy']:.3f})")
    figure.tight_layout()
    return metrics, figure
