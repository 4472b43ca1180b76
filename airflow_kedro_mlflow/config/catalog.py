"""What a project's catalog says of its datasets, credentials left out: which are parameters,
which are kept in memory and which are persisted (with a file path whose URL credentials are
removed). Export compiles the manifest from it; a node task reports its lineage from it.
"""

from __future__ import annotations

from typing import Any

from airflow_kedro_mlflow.core.manifest import DatasetSpec
from airflow_kedro_mlflow.core.urls import redact_url

MEMORY_DATASET_TYPES = {
    "kedro.io.memory_dataset.MemoryDataset",
    "kedro.io.shared_memory_dataset.SharedMemoryDataset",
}



def catalog_resolver(catalog_config: dict[str, Any]) -> Any:
    """Kedro's resolver of catalog entries and dataset factories, with credentials left out
    (and Kedro's runtime pattern given, as its catalog gives it, so that no warning is logged)."""
    from kedro.io.catalog_config_resolver import DEFAULT_RUNTIME_PATTERN, CatalogConfigResolver

    def without_credentials(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: without_credentials(v) for k, v in value.items() if k != "credentials"}
        return value

    return CatalogConfigResolver(config=without_credentials(dict(catalog_config)),
                                 default_runtime_patterns=DEFAULT_RUNTIME_PATTERN)


def dataset_spec(name: str, catalog: Any) -> DatasetSpec:
    """What the catalog config says of ``name``: a parameter, persisted, or kept in memory."""
    if name == "parameters" or name.startswith("params:"):
        return DatasetSpec(name=name, kind="parameter")
    declared = (
        name in catalog.config
        or catalog.match_dataset_pattern(name) is not None
        or catalog.match_user_catch_all_pattern(name) is not None
    )
    if not declared:
        return DatasetSpec(name=name, kind="memory")
    from kedro.io.core import parse_dataset_definition

    config: dict[str, Any] = catalog.resolve_pattern(name) or {}
    dataset_class, _ = parse_dataset_definition(config)
    dataset_type = f"{dataset_class.__module__}.{dataset_class.__qualname__}"
    if dataset_type in MEMORY_DATASET_TYPES:
        return DatasetSpec(name=name, kind="memory", type=dataset_type)
    wrapped = config.get("dataset")
    inner: dict[str, Any] = wrapped if isinstance(wrapped, dict) else {}
    filepath = config.get("filepath") or config.get("path") or inner.get("filepath")
    return DatasetSpec(
        name=name,
        kind="persisted",
        type=dataset_type,
        versioned=bool(config.get("versioned", False)),
        # the manifest becomes DAG files, Asset URIs and lineage: never a URL's credentials
        filepath=redact_url(str(filepath)) if filepath else None,
    )
