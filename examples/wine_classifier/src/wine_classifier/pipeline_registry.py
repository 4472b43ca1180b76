"""Project pipelines."""

from __future__ import annotations

from kedro.pipeline import Pipeline

from wine_classifier.pipelines import data_processing, inference, model_training


def register_pipelines() -> dict[str, Pipeline]:
    """Register the project's pipelines.

    The pipelines are listed explicitly (rather than with ``find_pipelines``) so
    that the registry contents and their order are stable and obvious.
    ``__default__`` is the training pipeline; ``inference`` runs on its own,
    scheduled on the model the training pipeline saves.

    Returns:
        A mapping from pipeline names to ``Pipeline`` objects.
    """
    dp = data_processing.create_pipeline()
    mt = model_training.create_pipeline()
    return {
        "data_processing": dp,
        "model_training": mt,
        "inference": inference.create_pipeline(),
        "__default__": dp + mt,
    }
