"""URLs as they may be shown: without the credentials some URLs carry.

A URL holds secrets in two places: its user-info (``https://user:password@host``) and its query
(``?token=...``, an Azure SAS's ``&sig=...``, an S3 presigned URL's ``X-Amz-Signature=...``).
Whatever names a URL outside the task that uses it (a run link in XCom, a log line, an error
message, an Asset URI in a DAG file, an OpenLineage dataset) shows ``redact_url``'s form, and
``url_secrets`` lists what it removed, for the secret masker. Removing rather than replacing with
``***`` keeps the shown URL an identity: the Asset of a presigned URL stays the same Asset when
its signature rotates.

Light module, standard library only: the DAG-parse path (the manifest) imports it.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, unquote_plus

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")
_SECRET_NAMES = frozenset({"key", "sig", "pwd", "auth"})
_SECRET_SUFFIXES = ("token", "secret", "password", "passwd", "signature", "credential",
                    "credentials", "apikey", "api_key", "access_key", "secret_key", "private_key")
_AZURE_SAS = frozenset({"sv", "ss", "srt", "sp", "se", "st", "spr", "sr", "si", "sip", "sdd",
                        "skoid", "sktid", "skt", "ske", "sks", "skv", "saoid", "suoid", "scid", "ses"})
"""The other fields of an Azure SAS (version, expiry, permissions...): not secret, but they
change with every signature, so they go with ``sig``."""
_SIGNED_PREFIXES = ("x-amz-", "x-goog-")
"""S3 and GCS presigned URLs: once their signature goes, their other signing fields go too."""


def is_secret_param(name: str) -> bool:
    """Whether a query parameter called ``name`` carries a secret (case-insensitive)."""
    lowered = unquote_plus(name).lower()
    return lowered in _SECRET_NAMES or lowered.endswith(_SECRET_SUFFIXES)


def split_userinfo(url: str) -> tuple[str, str | None, str | None]:
    """``url`` without its user-info, and the user and password it held (percent-decoded).

    The query is kept: this is the URL a client still talks to, with the credentials handed over
    some other way (MLflow's ``MLFLOW_TRACKING_USERNAME``/``PASSWORD``)."""
    start, end = _authority(url)
    userinfo, at, host = url[start:end].rpartition("@")
    if start < 0 or not at:
        return url, None, None
    user, colon, password = userinfo.partition(":")
    return url[:start] + host + url[end:], unquote(user) or None, unquote(password) if colon else None


def redact_url(url: str) -> str:
    """``url`` without user-info and secret query parameters (``token``, ``sig``, ``key``,
    ``X-Amz-Signature``...); anything that is not a URL comes back unchanged."""
    shown, _, _ = split_userinfo(url)
    base, query, fragment = _query(shown)
    if query is None or _authority(shown)[0] < 0:
        return shown
    dropped = _dropped(query)
    kept = [part for part in query.split("&") if part and _name(part).lower() not in dropped]
    return base + ("?" + "&".join(kept) if kept else "") + fragment


def url_secrets(url: str) -> tuple[str, ...]:
    """The secrets ``redact_url`` removes from ``url``, as written and percent-decoded: the
    password (or a user without one, which is then a token), and secret query values."""
    _, user, password = split_userinfo(url)
    start, end = _authority(url)
    userinfo = url[start:end].rpartition("@")[0] if start >= 0 else ""
    raw_user, _, raw_password = userinfo.partition(":")
    found = [raw_password, password] if password else [raw_user, user]
    _, query, _ = _query(url)
    for part in (query or "").split("&"):
        name, _, value = part.partition("=")
        if value and is_secret_param(name):
            found += [value, unquote_plus(value)]
    return tuple(dict.fromkeys(secret for secret in found if secret))


def _authority(url: str) -> tuple[int, int]:
    """Where the authority (``user:password@host:port``) of ``url`` is; ``(-1, -1)`` if none."""
    scheme_end = url.find("://")
    if scheme_end <= 0 or not _SCHEME.fullmatch(url[:scheme_end]):
        return -1, -1
    start = scheme_end + 3
    ends = [i for i in (url.find(c, start) for c in "/?#") if i >= 0]
    return start, min(ends, default=len(url))


def _query(url: str) -> tuple[str, str | None, str]:
    """``url`` split into what precedes its query, the query (``None``: none) and the fragment."""
    question = url.find("?")
    if question < 0:
        return url, None, ""
    hash_ = url.find("#", question)
    end = hash_ if hash_ >= 0 else len(url)
    return url[:question], url[question + 1 : end], url[end:]


def _name(part: str) -> str:
    return unquote_plus(part.partition("=")[0])


def _dropped(query: str) -> set[str]:
    """The (lower-case) names of the query's parameters to drop: the secret ones, and the
    signing fields of a signed URL whose signature is among them."""
    names = {_name(part).lower() for part in query.split("&") if part}
    dropped = {name for name in names if is_secret_param(name)}
    if "sig" in dropped:
        dropped |= names & _AZURE_SAS
    for prefix in _SIGNED_PREFIXES:
        if any(name.startswith(prefix) for name in dropped):
            dropped |= {name for name in names if name.startswith(prefix)}
    return dropped
