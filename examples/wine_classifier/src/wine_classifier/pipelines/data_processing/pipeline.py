"""The ``data_processing`` pipeline: load -> clean -> split.

Everything is built under the ``data_processing`` namespace, so node names,
intermediate datasets and parameters get the prefix (``data_processing.clean_data``,
``data_processing.wine_clean``, ``params:data_processing.cleaning``). The raw
data and the train/test splits are listed in ``outputs`` so they keep their
plain names and can be consumed by ``model_training``.
"""

from kedro.pipeline import Pipeline, node, pipeline

from .nodes import clean_data, load_wine_data, split_data

SPLITS = ["X_train", "X_test", "y_train", "y_test"]


def create_pipeline(**kwargs) -> Pipeline:
    template = Pipeline(
        [
            node(
                func=load_wine_data,
                inputs=None,
                outputs="wine_raw",
                name="load_wine_data",
            ),
            node(
                func=clean_data,
                inputs=["wine_raw", "params:cleaning"],
                outputs="wine_clean",
                name="clean_data",
            ),
            node(
                func=split_data,
                inputs=["wine_clean", "params:split"],
                outputs=SPLITS,
                name="split_data",
            ),
        ]
    )
    # No ``parameters=`` mapping: listing a parameter there would *exempt* it
    # from the namespace, and we want ``params:data_processing.*``.
    return pipeline(
        template,
        namespace="data_processing",
        outputs={"wine_raw", *SPLITS},
    )
