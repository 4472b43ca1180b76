"""Credentials from Airflow Connections: ``${airflow_conn:<conn_id>[,<field>]}`` in Kedro config.

Airflow users keep S3 and MLflow credentials in Connections, often behind a secrets backend.
This OmegaConf resolver reads a Connection through the Task SDK inside the task (so secrets
backends and ``AIRFLOW_CONN_<ID>`` variables work, and Airflow masks what it returns), and tasks
register it before they read any config. In ``credentials.yml``::

    s3: ${airflow_conn:wine_s3}            # an aws Connection as s3fs options
    mlflow:                                # environment of the MLflow client
      MLFLOW_TRACKING_TOKEN: ${airflow_conn:mlflow_default,password}

and in ``mlflow.yml``: ``mlflow_tracking_uri: ${airflow_conn:mlflow_default,url}``.

Fields: ``login``, ``password``, ``host``, ``port``, ``schema``, ``conn_type``, ``url`` (an http
Connection as ``scheme://host:port``), ``extra`` and ``extra.<key>``. Without a field, an ``aws``
Connection gives the s3fs options Kedro datasets and the intermediate store take (``key``,
``secret``, ``token``, ``client_kwargs.endpoint_url``/``region_name``). For ``kedro run``
outside Airflow, register it in the project's ``settings.py``::

    from airflow_kedro_mlflow.config.connections import airflow_conn
    CONFIG_LOADER_ARGS = {"custom_resolvers": {"airflow_conn": airflow_conn}}

Light module: Airflow's SDK is imported when a value is resolved.
"""

from __future__ import annotations

from typing import Any

from airflow_kedro_mlflow.core.errors import ConfigError

RESOLVER = "airflow_conn"
FIELDS = ("login", "password", "host", "port", "schema", "conn_type", "url", "extra")


def airflow_conn(conn_id: str, field: str | None = None) -> Any:
    """The resolver: the Connection ``conn_id`` (as s3fs options), or one ``field`` of it."""
    conn = _connection(conn_id)
    if field is None:
        if (conn.conn_type or "").lower() not in ("aws", "s3"):
            raise ConfigError(
                f"${{{RESOLVER}:{conn_id}}}: Connection '{conn_id}' is of type "
                f"'{conn.conn_type}'; name a field: ${{{RESOLVER}:{conn_id},login}} (fields: "
                f"{', '.join(FIELDS)}, extra.<key>)"
            )
        return s3fs_options(conn)
    field = field.strip()
    if field == "url":
        return _url(conn)
    if field == "extra":
        return dict(conn.extra_dejson)
    if field.startswith("extra."):
        return conn.extra_dejson.get(field.removeprefix("extra."))
    if field not in FIELDS:
        raise ConfigError(
            f"${{{RESOLVER}:{conn_id},{field}}}: unknown field '{field}' (fields: "
            f"{', '.join(FIELDS)}, extra.<key>)"
        )
    return getattr(conn, field)


def s3fs_options(conn: Any) -> dict[str, Any]:
    """An aws Connection (login/password, extra endpoint_url, region_name, aws_session_token)
    as s3fs options."""
    extra = conn.extra_dejson
    endpoint = (extra.get("endpoint_url")
                or extra.get("service_config", {}).get("s3", {}).get("endpoint_url"))
    client_kwargs = {k: v for k, v in {"endpoint_url": endpoint,
                                       "region_name": extra.get("region_name")}.items() if v}
    options = {"key": conn.login, "secret": conn.password, "token": extra.get("aws_session_token"),
               "client_kwargs": client_kwargs or None}
    return {k: v for k, v in options.items() if v}


def register() -> None:
    """Make ``${airflow_conn:...}`` resolvable in every Kedro config loader of this process."""
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver(RESOLVER):
        register_resolver = getattr(OmegaConf, "register_resolver", None)
        if register_resolver is None:  # OmegaConf < 2.4
            register_resolver = OmegaConf.register_new_resolver
        register_resolver(RESOLVER, airflow_conn)


def _connection(conn_id: str) -> Any:
    try:
        from airflow.sdk import Connection
    except ImportError:  # the node runner in an environment without Airflow
        return _connection_from_environment(conn_id)
    try:
        return Connection.get(conn_id)
    except Exception as exc:
        raise ConfigError(
            f"${{{RESOLVER}:{conn_id}}}: Airflow has no Connection '{conn_id}' ({exc}); define "
            f"it (UI, CLI, a secrets backend, or AIRFLOW_CONN_{conn_id.upper()})"
        ) from None


class _EnvironmentConnection:
    """A Connection given as ``AIRFLOW_CONN_<ID>`` in Airflow's JSON form, read without Airflow
    (how the virtualenv mode hands the node runner the Connections its project names)."""

    def __init__(self, values: dict[str, Any]) -> None:
        for field in ("conn_type", "host", "login", "password", "schema", "port"):
            setattr(self, field, values.get(field))
        extra = values.get("extra") or {}
        if isinstance(extra, str):
            import json

            extra = json.loads(extra) if extra else {}
        self.extra_dejson = extra


def _connection_from_environment(conn_id: str) -> Any:
    import json
    import os

    name = f"AIRFLOW_CONN_{conn_id.upper()}"
    text = os.environ.get(name)
    try:
        values = json.loads(text) if text else None
    except ValueError:
        values = None
    if not isinstance(values, dict):
        raise ConfigError(
            f"${{{RESOLVER}:{conn_id}}}: no Connection '{conn_id}' here (no Airflow in this "
            f"environment, and {name} is {'not JSON' if text else 'not set'}): the launching "
            "task passes the Connections the project's config names"
        )
    return _EnvironmentConnection(values)


def _url(conn: Any) -> str:
    host = conn.host or ""
    if "://" in host:
        return host.rstrip("/")
    scheme = conn.schema if conn.schema in ("http", "https") else (
        "https" if (conn.conn_type or "").lower() == "https" else "http")
    return f"{scheme}://{host}" + (f":{conn.port}" if conn.port else "")
