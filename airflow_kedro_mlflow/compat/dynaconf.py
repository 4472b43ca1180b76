"""dynaconf's module-level ``inspect`` in its settings loaders, and its Flask extension.

Checked against dynaconf 3.3.5 (``compat.CHECKED``). Kedro loads a project's settings through
dynaconf, whose loaders call ``inspect.stack()`` (reading every frame's source) to compare file
names; ``settings_loaded_without_reading_source`` lends them an ``inspect`` whose ``stack()``
reads none (every bootstrap of a project here: export, tasks, the parent-run settler).
"""

from __future__ import annotations

import contextlib
import importlib
import sys
from collections.abc import Iterator
from types import ModuleType
from typing import Any


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


class _FramesWithoutSource:
    """``inspect`` as dynaconf's loaders see it, whose ``stack()`` reads no source lines."""

    def __init__(self, inspect_module: Any):
        self._inspect = inspect_module

    def stack(self, context: int = 0) -> Any:
        return self._inspect.stack(0)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inspect, name)


@contextlib.contextmanager
def settings_loaded_without_reading_source() -> Iterator[None]:
    """Let dynaconf load the project's ``settings.py`` without reading every frame's source.

    Bootstrapping a Kedro project loads its settings through dynaconf, which looks for optional
    ``<env>_settings`` and ``global_settings`` modules; for each it calls ``inspect.stack()``
    twice, only to compare frame file names. ``inspect.stack()`` also reads the source lines of
    every frame on the stack, which in an Airflow task (a deep stack, thousands of loaded
    modules) costs tens of milliseconds per call. With ``context=0`` the frames and file names
    are the same and no source is read. Only dynaconf's loader modules see the change, and only
    meanwhile.
    """
    import inspect

    import_without_flask()  # dynaconf is first imported here, by modules_using
    patched = modules_using(inspect)
    for module in patched:
        setattr(module, "inspect", _FramesWithoutSource(inspect))  # noqa: B010
    try:
        yield
    finally:
        for module in patched:
            setattr(module, "inspect", inspect)  # noqa: B010
