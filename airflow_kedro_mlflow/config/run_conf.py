"""A DAG run's conf as Kedro runtime parameters (``kedro run --params``).

The exported DAG declares the pipeline's top-level parameters as Airflow ``Param``s, so the
trigger form shows them with the values they had at export. The form submits every one of them,
changed or not; passing the unchanged ones on would pin parameters to their exported values even
after ``parameters.yml`` changed. So only what differs from the DAG's defaults is passed, down to
the nested key that changed; Kedro merges it into the project's current parameters. Light module:
no Kedro import.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_kedro_mlflow.core.errors import ConfigError


def conf_of(dag_run: Any) -> dict[str, Any]:
    """The DAG run's conf, which must be a JSON object of parameter names."""
    conf = getattr(dag_run, "conf", None) or {}
    if not isinstance(conf, Mapping):
        raise ConfigError(f"DAG run conf must be a JSON object of Kedro parameters, got {conf!r}")
    return dict(conf)


def overrides(conf: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """What ``conf`` changes of ``defaults``: keys without a default whole, nested mappings down
    to the keys that differ, anything else whole where it differs."""
    changed: dict[str, Any] = {}
    for key, value in conf.items():
        if key not in defaults:
            changed[key] = value
        elif isinstance(value, Mapping) and isinstance(defaults[key], Mapping):
            nested = overrides(value, defaults[key])
            if nested:
                changed[key] = nested
        elif value != defaults[key]:
            changed[key] = value
    return changed


def check_known(conf: Mapping[str, Any], parameters: Mapping[str, Any], where: str) -> None:
    """Fail on a top-level conf key that is not a parameter of the project: Kedro would add it
    as a new parameter that nothing reads, and the run would go on with the value it meant to
    change (a typo). Nested keys are not checked: a mapping parameter may take new keys."""
    unknown = sorted(set(conf) - set(parameters))
    if unknown:
        raise ConfigError(
            f"DAG run conf key{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} "
            f"{'are' if len(unknown) > 1 else 'is'} not a parameter of {where} (its parameters: "
            f"{', '.join(sorted(parameters)) or 'none'}): fix the conf, or add the parameter to "
            "the project's parameters files"
        )
