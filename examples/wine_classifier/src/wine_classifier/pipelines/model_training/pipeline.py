"""The ``model_training`` pipeline: one template, one copy per model.

The ``train_model -> evaluate_model`` template is instantiated under the
namespaces in ``MODELS``. Each copy reads the shared, un-prefixed train/test
splits (listed in ``inputs``) and its own ``params:<namespace>.model_options``,
and writes ``<namespace>.model``, ``<namespace>.metrics`` and
``<namespace>.confusion_matrix`` (catalogued through dataset factories).
"""

from kedro.pipeline import Pipeline, node, pipeline

from .nodes import evaluate_model, train_model

MODELS = ["random_forest", "logistic_regression"]
SPLITS = {"X_train", "X_test", "y_train", "y_test"}


def create_template() -> Pipeline:
    """Return the un-namespaced train/evaluate pipeline."""
    return Pipeline(
        [
            node(
                func=train_model,
                inputs=["X_train", "y_train", "params:model_options"],
                outputs="model",
                name="train_model",
            ),
            node(
                func=evaluate_model,
                inputs=["model", "X_test", "y_test"],
                outputs=["metrics", "confusion_matrix"],
                name="evaluate_model",
            ),
        ]
    )


def create_pipeline(**kwargs) -> Pipeline:
    template = create_template()
    return Pipeline(
        [pipeline(template, namespace=ns, inputs=SPLITS) for ns in MODELS]
    )
