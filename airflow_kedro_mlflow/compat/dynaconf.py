"""dynaconf's module-level ``inspect`` in its settings loaders, and its Flask extension.

Checked against dynaconf 3.3.5 (``compat.CHECKED``). Kedro loads a project's settings through
dynaconf, whose loaders call ``inspect.stack()`` (reading every frame's source) to compare file
names; ``runtime.kedro_startup`` lends them an ``inspect`` whose ``stack()`` reads none.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType


def import_without_flask() -> None:
    """Import dynaconf without its Flask extension importing Flask.

    ``dynaconf/__init__`` imports ``dynaconf.contrib``, whose Flask extension imports Flask
    whenever it is installed (Airflow installs it): 50-60 ms of every task, for an extension
    Kedro never uses. While dynaconf is imported, ``flask`` reads as not installed (a ``None``
    in ``sys.modules``), so the extension defines itself as it does where Flask is absent; then
    Flask is importable again as usual. Nothing happens once dynaconf or Flask is imported."""
    if "dynaconf" in sys.modules or "flask" in sys.modules:
        return
    sys.modules["flask"] = None  # type: ignore[assignment]
    try:
        importlib.import_module("dynaconf")
    except ImportError:
        pass  # Kedro will say so, where it imports dynaconf itself
    finally:
        if "flask" in sys.modules and sys.modules["flask"] is None:
            del sys.modules["flask"]

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
