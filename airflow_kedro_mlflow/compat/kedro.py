"""Kedro internals: per-session hooks, the session's save version and config loader, versioned
datasets' paths.

Checked against Kedro 1.6.0 (``compat.CHECKED``); ``tests/test_compat.py`` runs each on the
installed Kedro.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any


def register_hooks(session: Any, *hooks: Any) -> None:
    """Add hook implementations to one session only.

    Kedro registers hooks from the project's ``settings.HOOKS`` and plugins' entry points, for
    every session of the process; a node task needs its own (intermediate data, owned outputs,
    the save lease) for its session alone. ``KedroSession._hook_manager`` is the pluggy manager
    Kedro calls; there is no public way to add to it."""
    for hook in hooks:
        session._hook_manager.register(hook)


@contextlib.contextmanager
def plugin_hooks_blocked(*entry_points: str) -> Iterator[None]:
    """Sessions created meanwhile never import these plugins' hooks (names of ``kedro.hooks``
    entry points).

    Kedro's ``DISABLE_HOOKS_FOR_PLUGINS`` unregisters a plugin's hooks after importing it;
    pluggy skips a blocked name before it imports anything. ``KedroSession.__init__`` makes its
    hook manager with ``_create_hook_manager`` from its own module, then loads the entry
    points: the manager it gets here has the names blocked already."""
    from kedro.framework.session import session as session_module

    create = session_module._create_hook_manager

    def create_blocking() -> Any:
        manager = create()
        for name in entry_points:
            manager.set_blocked(name)
        return manager

    session_module._create_hook_manager = create_blocking
    try:
        yield
    finally:
        session_module._create_hook_manager = create


def without_project_hooks(session: Any) -> None:
    """Give ``session`` a hook manager with no project or plugin hooks registered.

    Export opens the project to read its pipelines and catalog: no project or plugin hook may
    run (they could start MLflow runs or touch data). ``_create_hook_manager`` is how Kedro
    makes an empty manager (with its hook specs); ``KedroSession.create`` has no option."""
    from kedro.framework.hooks import _create_hook_manager

    session._hook_manager = _create_hook_manager()


def set_save_version(session: Any, save_version: str) -> None:
    """Make ``save_version`` the session's id, which Kedro uses as every dataset's save version.

    All tasks of a DAG run must save under one version (the run's), not one per task. Kedro
    reads it from ``session.session_id`` and the session store's ``session_id`` (``_store``)."""
    session.session_id = save_version
    session._store["session_id"] = save_version


def use_config_loader(session: Any, loader: Any) -> None:
    """Make ``session`` (its context, catalog and hooks) read config through ``loader``.

    A task opens the project's configuration once, with the DAG run's conf as runtime
    parameters, and reads credentials, airflow.yml and mlflow.yml through it before the session
    exists; Kedro's session would build a second loader of its own. ``_get_config_loader`` is
    where ``KedroSession.load_context`` gets it; there is no public way to hand one in."""
    session._get_config_loader = lambda: loader


def quiet_resolver_deprecation() -> None:
    """Drop OmegaConf 2.4's deprecation warning for ``register_new_resolver`` that Kedro (1.6)
    triggers each time it opens a config loader: three to four identical warnings in every task
    log, about a call neither the project nor the operator can change. Only that message, only
    from Kedro's config module; gone with a Kedro that calls ``register_resolver``."""
    import warnings

    warnings.filterwarnings("ignore", message=r"register_new_resolver\(\) is deprecated",
                            category=UserWarning, module=r"kedro\.config\.")


def version_of(dataset: Any) -> Any:
    """The ``Version`` of a versioned dataset (``AbstractVersionedDataset._version``), or None."""
    return getattr(dataset, "_version", None)


def wrapped_dataset(dataset: Any) -> Any:
    """The dataset a wrapper (kedro-mlflow's artifact dataset, ...) saves through (``_dataset``)."""
    return getattr(dataset, "_dataset", None)


def versioned_path(dataset: Any, version: str) -> Any:
    """Where ``dataset`` saves ``version`` (``_get_versioned_path``): the folder a retry must
    replace, and the file an artifact dataset logs."""
    return dataset._get_versioned_path(version)


def path_exists(dataset: Any, path: str) -> bool:
    """Whether ``path`` exists in ``dataset``'s filesystem (``_exists_function``)."""
    return bool(dataset._exists_function(path))


def filesystem_of(dataset: Any) -> Any:
    """The fsspec filesystem an fsspec-based Kedro dataset writes with (``_fs``), or None."""
    return getattr(dataset, "_fs", None)


def protocol_of(dataset: Any) -> str | None:
    """The fsspec protocol of a Kedro file dataset (``_protocol``; ``"file"`` when it has none)."""
    return getattr(dataset, "_protocol", "file")


def invalidate_cache(dataset: Any) -> None:
    """Forget what ``dataset`` cached of its filesystem (``_invalidate_cache``), if it caches."""
    invalidate = getattr(dataset, "_invalidate_cache", None)
    if callable(invalidate):
        invalidate()


def filepath_of(dataset: Any) -> Any:
    """The file an unversioned file dataset writes (``_filepath``), or None."""
    return getattr(dataset, "_filepath", None)


def wrap_memory_copy_mode(wrap: Callable[[Callable[[Any], str]], Callable[[Any], str]]) -> bool:
    """Replace how ``MemoryDataset`` infers a copy mode with ``wrap(original)``; False if this
    Kedro has no such function (or it is wrapped already).

    Kedro's ``kedro.io.memory_dataset._infer_copy_mode`` imports pandas, numpy and ibis to
    decide; ``runtime.kedro_startup`` answers without importing them while none is loaded."""
    from kedro.io import memory_dataset

    original = getattr(memory_dataset, "_infer_copy_mode", None)
    if original is None or hasattr(original, "__wrapped__"):
        return False
    memory_dataset._infer_copy_mode = wrap(original)  # type: ignore[assignment]
    return True
