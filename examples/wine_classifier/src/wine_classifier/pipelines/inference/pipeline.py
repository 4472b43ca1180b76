"""The ``inference`` pipeline: raw wines -> features -> predictions of the champion model.

``champion_model`` is catalogued as the registered model's ``@champion`` alias in MLflow, so
this pipeline always scores with the model that the training DAG's promotion gate last
promoted, not with whatever was trained last.
"""

from kedro.pipeline import Pipeline, node, pipeline

from .nodes import predict, prepare_features


def create_pipeline(**kwargs) -> Pipeline:
    template = Pipeline(
        [
            node(prepare_features, "wine_raw", "features", name="prepare_features"),
            node(predict, ["champion_model", "features"], "predictions", name="predict"),
        ]
    )
    return pipeline(
        template,
        namespace="inference",
        inputs={"wine_raw", "champion_model"},
        outputs={"predictions": "wine_predictions"},
    )
