"""The one way credentials reach anything: ``credentials.yml``, resolved inside the task.

Kedro's config loader reads ``conf/<env>/credentials.yml`` (with ``${oc.env:...}``) in the task
process only; DAG files, XCom and MLflow never see a value. Every secret value of the file is
registered with Airflow's secret masker before anything else can log it; only values known to
locate a service (an endpoint URL without credentials or query, a region, a bucket, a host, a
port) stay readable, so an outage names what is down.
Consumers (the MLflow client, the intermediate store) name an entry; a missing entry is an error
that names the entry and the file and key that referenced it, never a value.
"""

from __future__ import annotations

import logging
import re
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from airflow_kedro_mlflow.config.kedro_project import (
    conf_source_path,
    config_loader,
    describe_sources,
    read_config,
)
from airflow_kedro_mlflow.config.project_ref import KedroProject
from airflow_kedro_mlflow.core.errors import ConfigError
from airflow_kedro_mlflow.core.urls import url_secrets

CREDENTIALS_PATTERNS = ["credentials*", "credentials*/**", "**/credentials*"]


# Values that say *where* something is, not who may use it: readable in logs, so that an error
# names the endpoint, region or bucket that is down. The key's last word decides (``endpoint_url``,
# ``MLFLOW_S3_ENDPOINT_URL``, ``AWS_DEFAULT_REGION``, ``db_host``); any other key is masked, ``*_url``
# and ``*_uri`` included: a Slack ``webhook_url`` or an Azure ``sas_url`` *is* the secret.
_LOCATOR_KEY = re.compile(
    r"(?:^|[_.-])(?:endpoint|endpoint_url|region|region_name|bucket|bucket_name|host|port)$", re.I
)
_SECRET_WORD = re.compile(r"key|secret|token|passw|pwd|auth|credential|session|private|cert", re.I)


def is_locator(key: str | None, value: Any) -> bool:
    """Whether ``value`` under ``key`` only locates a service (kept readable) rather than being,
    or holding, a secret: a locator key, and a value with no user-info (``@``) and no query
    (``?token=``, ``&sig=``)."""
    if key is None or not _LOCATOR_KEY.search(key) or _SECRET_WORD.search(key):
        return False
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return False
    return not any(mark in str(value) for mark in "@?")


MASKED: set[str] = set()
"""Every secret string masked in this process: what ``redact`` hides where Airflow's masker does
not reach (the node runner's output, outside a task process)."""


def redact(text: str) -> str:
    """``text`` with every masked secret replaced by ``***``, longest first."""
    for secret in _longest_first():
        if secret in text:
            text = text.replace(secret, "***")
    return text


_ordered: tuple[set[str] | None, int, tuple[str, ...]] = (None, 0, ())


def _longest_first() -> tuple[str, ...]:
    """MASKED ordered longest first, sorted again only when it changed (it only grows, or is
    replaced): every log record of a task process is redacted (``_redact_log_records``)."""
    global _ordered
    masked, size, ordered = _ordered
    if masked is not MASKED or size != len(MASKED):
        ordered = tuple(sorted(MASKED, key=len, reverse=True))
        _ordered = (MASKED, len(MASKED), ordered)
    return ordered


def mask(value: Any, key: str | None = None) -> None:
    """Register every secret string in ``value`` (nested mappings and lists too) with the masker.

    Only locators stay readable (``is_locator``): endpoint URLs without credentials or query,
    regions, buckets, hosts, ports. Everything else is masked, URLs under other keys included.
    """
    if isinstance(value, Mapping):
        for name, item in value.items():
            mask(item, str(name))
    elif isinstance(value, (list, tuple)):
        for item in value:
            mask(item, key)
    elif value is not None and not isinstance(value, bool) and not is_locator(key, value):
        text = str(value)
        # the URL's own secrets too: a client may show them decoded (``p%40ss`` as ``p@ss``)
        for secret in (text, *url_secrets(text)):
            _mask_one(secret)


def mask_url(url: str | None) -> None:
    """Register the secrets a URL carries (password, token, secret query values) with the masker,
    leaving the rest of it readable: for URLs outside credentials.yml (the tracking URI)."""
    for secret in url_secrets(url or ""):
        _mask_one(secret)


def _mask_one(secret: str) -> None:
    if len(secret) >= 5:  # as Airflow's masker (min_length_masked_secret)
        MASKED.add(secret)
        _redact_log_records()
    try:
        from airflow.sdk.log import mask_secret
    except ImportError:  # pragma: no cover - outside Airflow
        return
    mask_secret(secret)


_record_factory_installed = False


def _redact_log_records() -> None:
    """From now on, every log record this process makes carries the masked secrets as ``***``.

    Airflow masks a task's log file in the task's supervisor; but its LocalExecutor also echoes
    every task log line to the scheduler's stdout (Airflow 3.3: the supervisor's
    ``subprocess_logs_to_stdout``), and that copy is not masked. A record redacted where it is
    made (Kedro's, a dataset's, the node's own, tracebacks too) is safe on every path."""
    global _record_factory_installed
    if _record_factory_installed:
        return
    _record_factory_installed = True
    make_record = logging.getLogRecordFactory()

    def redacted_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        if not MASKED:
            return record
        try:
            message = record.getMessage()
            if record.exc_info and record.exc_info[1] is not None:
                message += "\n" + "".join(traceback.format_exception(*record.exc_info))
        except Exception:  # a record that cannot format stays as it is
            return record
        shown = redact(message)
        if shown != message:
            record.msg, record.args, record.exc_info, record.exc_text = shown, None, None, None
        return record

    logging.setLogRecordFactory(redacted_record)


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
