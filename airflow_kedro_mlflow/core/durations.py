"""Durations as users write them in airflow.yml and on the command line: ``30s``, ``5m``, ``12h``,
``7d``, ``2w``, or a bare number in the unit the setting names. One parser for all of them."""

from __future__ import annotations

import re
from typing import Any

UNIT_SECONDS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(rf"^\s*(\d+(?:\.\d+)?)\s*({'|'.join(UNIT_SECONDS)})?\s*$")


def seconds(value: Any, default_unit: str | None = None) -> float | None:
    """``value`` in seconds; a bare number (or a string without a unit) is in ``default_unit``
    (without one, a unit is required). ``None`` when ``value`` is no such duration."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value) * UNIT_SECONDS[default_unit] if default_unit and value >= 0 else None
    if isinstance(value, str) and (match := _DURATION.match(value)):
        number, written = match.groups()
        unit: str | None = written or default_unit
        if unit:
            return float(number) * UNIT_SECONDS[unit]
    return None
