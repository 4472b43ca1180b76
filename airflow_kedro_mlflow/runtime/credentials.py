"""The one way credentials reach anything: ``credentials.yml``, resolved inside the task.

Kedro's config loader reads ``conf/<env>/credentials.yml`` (with ``${oc.env:...}``) in the task
process only; DAG files, XCom and MLflow never see a value. Every secret value of the file is
registered with Airflow's secret masker before anything else can log it; values that only locate
a service (endpoint URLs, regions, buckets) stay readable, so an outage names what is down.
Consumers (the MLflow client, the intermediate store) name an entry; a missing entry is an error
that names the entry and the file and key that referenced it, never a value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from airflow_kedro_mlflow.errors import ConfigError
from airflow_kedro_mlflow.kedro_project import (
    conf_source_path,
    config_loader,
    describe_sources,
    read_config,
)
from airflow_kedro_mlflow.project_ref import KedroProject

CREDENTIALS_PATTERNS = ["credentials*", "credentials*/**", "**/credentials*"]


# Values that say *where* something is, not who may use it: readable in logs, so that an error
# names the endpoint, region or bucket that is down. Anything else in credentials.yml is masked.
_LOCATOR_KEY = re.compile(r"(url|uri|endpoint|region|region_name|bucket|bucket_name|host|port)$", re.I)
_SECRET_WORD = re.compile(r"key|secret|token|passw|pwd|auth|credential|session|private|cert", re.I)
_USERINFO = re.compile(r"://[^/@\s]*@")


def is_locator(key: str | None, value: Any) -> bool:
    """Whether ``value`` under ``key`` locates a service (kept readable) rather than a secret."""
    if key is None or not _LOCATOR_KEY.search(key) or _SECRET_WORD.search(key):
        return False
    return not (isinstance(value, str) and _USERINFO.search(value))


MASKED: set[str] = set()
"""Every secret string masked in this process: what ``redact`` hides where Airflow's masker does
not reach (the node runner's output, outside a task process)."""


def redact(text: str) -> str:
    """``text`` with every masked secret replaced by ``***``, longest first."""
    for secret in sorted(MASKED, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, "***")
    return text


def mask(value: Any, key: str | None = None) -> None:
    """Register every secret string in ``value`` (nested mappings and lists too) with the masker.

    Endpoint URLs, regions, bucket names and hosts stay readable (``is_locator``); keys, secrets,
    tokens, passwords and URLs that embed credentials are masked.
    """
    if isinstance(value, Mapping):
        for name, item in value.items():
            mask(item, str(name))
    elif isinstance(value, (list, tuple)):
        for item in value:
            mask(item, key)
    elif value is not None and not isinstance(value, bool) and not is_locator(key, value):
        if len(str(value)) >= 5:  # as Airflow's masker (min_length_masked_secret)
            MASKED.add(str(value))
        try:
            from airflow.sdk.log import mask_secret
        except ImportError:  # pragma: no cover - outside Airflow
            return
        mask_secret(str(value))


class Credentials:
    """The project's credentials, masked as soon as they are read."""

    def __init__(self, entries: Mapping[str, Any], source: str):
        self._entries = entries
        self.source = source
        mask(entries)

    @classmethod
    def load(cls, project: KedroProject, project_path: Path) -> Credentials:
        loader = config_loader(project_path, project.env, project.conf_source)
        return cls.from_loader(loader, conf_source_path(project_path, project.conf_source), project.env)

    @classmethod
    def from_loader(cls, loader: Any, conf_root: Path, env: str | None) -> Credentials:
        """The credentials of ``loader``'s configuration (``conf_root``, ``env``)."""
        source = describe_sources(conf_root, env, "credentials")
        entries = read_config(loader, "credentials", CREDENTIALS_PATTERNS, source) or {}
        return cls(entries, source)

    def entry(self, name: str, referenced_by: str) -> dict[str, Any]:
        """The mapping stored under ``name``; ``referenced_by`` says which file and key named it."""
        value = self._entries.get(name)
        if value is None:
            raise ConfigError(
                f"{referenced_by} names credentials '{name}', which {self.source} does not define"
            )
        if not isinstance(value, Mapping):
            raise ConfigError(
                f"{referenced_by} names credentials '{name}', which is not a mapping in {self.source}"
            )
        return dict(value)
