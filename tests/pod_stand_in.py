"""This machine standing in for a Kubernetes cluster in ``dag.test()`` runs (no cluster here).

``KubernetesPodOperator.execute`` is replaced: the pod the provider would create is built by the
provider itself (``build_pod_request_obj``), checked against the Kubernetes client's models and
printed (``POD_SPEC <json>``); then its main container's command runs with the interpreter of
``AKM_POD_STAND_IN_PATH`` first on PATH (the image's ``python``) and the container's env. One
argument differs: the result file, ``/airflow/xcom/return.json`` in a pod, is a temporary file
here; its content is what the operator's xcom sidecar would return.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path


def install() -> None:
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

    KubernetesPodOperator.execute = _execute  # type: ignore[method-assign]


def _execute(self, context):
    from kubernetes.client import ApiClient

    pod = self.build_pod_request_obj(context, dry_run=True)  # dry: no API client, no cluster
    client = ApiClient()
    data = client.sanitize_for_serialization(pod)
    rebuilt = client._ApiClient__deserialize(data, "V1Pod")  # the models validate every field
    assert client.sanitize_for_serialization(rebuilt) == data
    print("POD_SPEC " + json.dumps(data), flush=True)
    container = pod.spec.containers[0]
    with tempfile.TemporaryDirectory() as folder:
        result_file = str(Path(folder, "return.json"))
        command = [result_file if arg == "/airflow/xcom/return.json" else arg
                   for arg in [*container.command, *container.args]]
        env = {**os.environ, **{e.name: e.value for e in container.env or []}}
        env["PATH"] = os.environ["AKM_POD_STAND_IN_PATH"] + os.pathsep + env["PATH"]
        env.pop("PYTHONPATH", None)
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        print(done.stdout + done.stderr, flush=True)
        if done.returncode != 0:
            raise RuntimeError(f"pod failed: exit code {done.returncode}")
        return json.loads(Path(result_file).read_text())
