"""The Kubernetes client's model deserializer.

Checked against kubernetes 36.0.3 (``compat.CHECKED``). ``pod_override`` and container resources
come from YAML as plain data; the client turns data into its models only in
``ApiClient.__deserialize`` (name-mangled: ``_ApiClient__deserialize``). The cncf provider's
``PodGenerator.deserialize_model_dict`` calls the same, for ``V1Pod`` only.
"""

from __future__ import annotations

from typing import Any


def deserialize(data: dict[str, Any], kind: str) -> tuple[Any, Any]:
    """``data`` as the client model ``kind`` (``"V1Pod"``...), and that model serialized back
    (what the client kept of ``data``: keys it does not know are dropped)."""
    from kubernetes.client import ApiClient

    client = ApiClient()
    model = client._ApiClient__deserialize(data, kind)
    return model, client.sanitize_for_serialization(model)
