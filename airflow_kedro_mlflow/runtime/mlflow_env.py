"""Point MLflow at the tracking and registry servers through the task's environment.

MLflow, when (if) the node's code imports it, reads ``MLFLOW_TRACKING_URI``; so does every
process the task starts, which inherits the environment. A password in that URI would sit in the
environment of each of them, and in every message MLflow writes with the URI. So the URIs go
there without user-info, and the user and password of an ``http(s)://`` server go where MLflow
documents them, ``MLFLOW_TRACKING_USERNAME``/``MLFLOW_TRACKING_PASSWORD`` (``mlflow_config``
took them out of the URIs). Every secret is registered with Airflow's secret masker first.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

from airflow_kedro_mlflow.config.credentials import mask, mask_url
from airflow_kedro_mlflow.config.mlflow import MlflowSettings

USERNAME_ENV = "MLFLOW_TRACKING_USERNAME"
PASSWORD_ENV = "MLFLOW_TRACKING_PASSWORD"


def point_mlflow_at(settings: MlflowSettings, environ: MutableMapping[str, str] = os.environ) -> None:
    """Set MLflow's URI and authentication variables in ``environ`` for ``settings``.

    A user and password already set (the worker's environment, or credentials.yml's entry named
    by ``server.credentials``) win over the URI's user-info, as they do in MLflow's own client.
    A database URI keeps its user-info (its client takes it no other way): its password is masked.
    """
    mask_url(settings.tracking_uri)
    mask_url(settings.registry_uri)
    if settings.tracking_password:
        mask(settings.tracking_password)
        if not (environ.get(USERNAME_ENV) and environ.get(PASSWORD_ENV)):
            environ[USERNAME_ENV] = settings.tracking_username or ""
            environ[PASSWORD_ENV] = settings.tracking_password
    environ["MLFLOW_TRACKING_URI"] = settings.tracking_uri or ""
    if settings.registry_uri:
        environ["MLFLOW_REGISTRY_URI"] = settings.registry_uri
