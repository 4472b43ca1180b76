"""What a node task read and wrote, for Airflow's OpenLineage integration.

With ``apache-airflow-providers-openlineage`` installed (this package's ``openlineage`` extra),
Airflow's OpenLineage listener asks each operator for its lineage after the task ran. A node task
answers with the catalog datasets its nodes read and wrote, persisted ones only (parameters and
data kept in memory are not datasets of the catalog): a dataset with a URL
(``s3://bucket/data/raw.csv``) is namespace ``s3://bucket`` and name ``data/raw.csv``, as the
OpenLineage naming spec has it; any other is ``kedro://<package>`` and its catalog name, the
same identity as the Airflow Asset the task publishes.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from airflow_kedro_mlflow.core.urls import redact_url


@dataclass(frozen=True)
class LineageDataset:
    namespace: str
    name: str

    @classmethod
    def from_uri(cls, uri: str) -> LineageDataset:
        """Namespace ``scheme://host`` and name ``path``, never with a URL's user-info or token
        (the events go to whatever backend the deployment's transport names)."""
        parts = urlsplit(redact_url(uri))
        return cls(f"{parts.scheme}://{parts.netloc}", parts.path.lstrip("/"))


@dataclass(frozen=True)
class NodeLineage:
    inputs: tuple[LineageDataset, ...] = ()
    outputs: tuple[LineageDataset, ...] = ()


def openlineage_enabled() -> bool:
    """Whether Airflow's OpenLineage provider is installed (else nobody asks for lineage)."""
    return importlib.util.find_spec("airflow.providers.openlineage") is not None


def node_lineage(pipeline: Any, node_names: tuple[str, ...], catalog_config: dict[str, Any],
                 package_name: str) -> NodeLineage:
    """The persisted catalog datasets that ``node_names`` of ``pipeline`` read and write."""
    from airflow_kedro_mlflow.config.catalog import catalog_resolver, dataset_spec

    resolver = catalog_resolver(catalog_config)
    wanted = set(node_names)
    nodes = [node for node in pipeline.nodes if node.name in wanted]

    def datasets(names: list[str]) -> tuple[LineageDataset, ...]:
        found = []
        for name in dict.fromkeys(names):  # in order, once each
            uri = dataset_spec(name, resolver).asset_uri(package_name)
            if uri is not None:
                found.append(LineageDataset.from_uri(uri))
        return tuple(found)

    written = [name for node in nodes for name in node.outputs]
    read = [name for node in nodes for name in node.inputs if name not in written]
    return NodeLineage(datasets(read), datasets(written))


def operator_lineage(lineage: NodeLineage | None) -> Any:
    """``lineage`` as the OpenLineage provider's ``OperatorLineage``."""
    from airflow.providers.common.compat.openlineage.facet import Dataset
    from airflow.providers.openlineage.extractors import OperatorLineage

    if lineage is None:
        return OperatorLineage()
    return OperatorLineage(
        inputs=[Dataset(namespace=d.namespace, name=d.name) for d in lineage.inputs],
        outputs=[Dataset(namespace=d.namespace, name=d.name) for d in lineage.outputs],
    )
