"""dynaconf's module-level ``inspect`` in its settings loaders.

Checked against dynaconf 3.3.5 (``compat.CHECKED``). Kedro loads a project's settings through
dynaconf, whose loaders call ``inspect.stack()`` (reading every frame's source) to compare file
names; ``runtime.kedro_startup`` lends them an ``inspect`` whose ``stack()`` reads none.
"""

from __future__ import annotations

import importlib
from types import ModuleType

INSPECTING_MODULES = ("dynaconf.loaders.py_loader", "dynaconf.utils.files")


def modules_using(inspect_module: ModuleType) -> list[ModuleType]:
    """dynaconf's loader modules whose ``inspect`` is ``inspect_module``."""
    found = []
    for name in INSPECTING_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if getattr(module, "inspect", None) is inspect_module:
            found.append(module)
    return found
