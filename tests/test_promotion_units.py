"""Fast tests of the promotion gate's MLflow lookups (no Airflow run, no MLflow server)."""

from __future__ import annotations

import pytest
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INTERNAL_ERROR, RESOURCE_DOES_NOT_EXIST

from airflow_kedro_mlflow.config.airflow_yml import Promotion
from airflow_kedro_mlflow.runtime.promotion import _model_version


class _Registry:
    def __init__(self, error: MlflowException):
        self.error = error

    def get_model_version(self, name, version):
        raise self.error


def _gate() -> Promotion:
    return Promotion(registered_model="wine", model="model", metric="accuracy")


def test_a_champion_version_deleted_since_is_no_champion():
    error = MlflowException("Model Version (name=wine, version=3) not found",
                            error_code=RESOURCE_DOES_NOT_EXIST)
    assert _model_version(_Registry(error), _gate(), "3") is None


def test_any_other_registry_error_is_raised_not_taken_for_no_champion():
    """Else the candidate would be promoted without being compared with the champion."""
    error = MlflowException("backend unavailable: version not found in cache",
                            error_code=INTERNAL_ERROR)
    with pytest.raises(MlflowException, match="backend unavailable"):
        _model_version(_Registry(error), _gate(), "3")
