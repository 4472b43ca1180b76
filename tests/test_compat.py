"""Each shim of airflow_kedro_mlflow.compat on the installed dependency, and that nothing else in
the package reaches into another project's private names.

A failure here names the shim, the dependency's installed version and the version the shim was
checked against: the place to look when a release moves something."""

from __future__ import annotations

import importlib.metadata
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import REPO, with_kedro_mlflow, with_kubernetes

from airflow_kedro_mlflow.compat import CHECKED

PACKAGE = REPO / "airflow_kedro_mlflow"


def _changed(distribution: str, shim: str, what: str) -> str:
    try:
        installed = importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        installed = "(beside the venv)"
    return (f"{distribution} {installed} changed {what}: see airflow_kedro_mlflow/compat/{shim}.py "
            f"(checked against {', '.join(CHECKED[distribution])})")


def _run(code: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


# --- nothing outside compat/ ------------------------------------------------------------------

_PRIVATE_ATTRIBUTE = re.compile(r"(?<![\w.])(\w+)\.(_[A-Za-z]\w*)")
_PRIVATE_GETATTR = re.compile(r"getattr\(\s*([^,]+?)\s*,\s*[\"'](_[A-Za-z]\w*)")
_PRIVATE_IMPORT = re.compile(r"from\s+(?!airflow_kedro_mlflow)([\w.]+)\s+import\s+[^\n{]*\b_[a-z]\w*")
_KNOWN_PRIVATE = ("_hook_manager", "_active_run_stack", "_ApiClient__", "ExecutorSafeguard",
                  "_create_hook_manager", "_infer_copy_mode", "_last_saved_model_uri",
                  "kedro_airflow.", "dynaconf.", "fluent._")
_OWN_OBJECTS = {"self", "cls", "other"}  # ``other``: our own classes' ``__eq__``


def _code_lines(path: Path):
    in_docstring = False
    for number, line in enumerate(path.read_text().splitlines(), 1):
        stripped = line.strip()
        if stripped.count('"""') == 1:
            in_docstring = not in_docstring
            continue
        if in_docstring or stripped.startswith(("#", '"""')):
            continue
        yield number, line.split("  #")[0]


def test_no_module_outside_compat_touches_another_projects_private_names():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "compat" in path.relative_to(PACKAGE).parts:
            continue
        for number, code in _code_lines(path):
            where = f"{path.relative_to(REPO)}:{number}"
            found += [f"{where} {m.group(0)}" for m in _PRIVATE_ATTRIBUTE.finditer(code)
                      if m.group(1) not in _OWN_OBJECTS]
            found += [f"{where} {m.group(0)}" for m in _PRIVATE_GETATTR.finditer(code)
                      if m.group(1) not in _OWN_OBJECTS]
            found += [f"{where} {m.group(0)}" for m in _PRIVATE_IMPORT.finditer(code)]
            found += [f"{where} {name}" for name in _KNOWN_PRIVATE
                      if re.search(rf"(?<!\w){re.escape(name)}", code)]
    assert found == [], "private API used outside airflow_kedro_mlflow/compat/:\n" + "\n".join(found)


def test_the_scan_sees_a_private_use():
    """The scan above finds what it looks for (a scan that cannot fail is no test)."""
    code = "session._hook_manager.register(x)"
    assert _PRIVATE_ATTRIBUTE.search(code) and any(n in code for n in _KNOWN_PRIVATE)
    assert not _PRIVATE_IMPORT.search("from airflow.sdk import {_sdk_imports(x)}")  # a template
    assert _PRIVATE_GETATTR.search('getattr(dataset, "_fs", None)')
    assert _PRIVATE_IMPORT.search("from kedro.framework.hooks import _create_hook_manager")
    assert _PRIVATE_ATTRIBUTE.search("self._store.write(x)").group(1) in _OWN_OBJECTS


def test_every_dependency_with_a_shim_has_a_tested_upper_bound():
    setup = (REPO / "setup.cfg").read_text()
    for requirement in ("kedro>=1.2,<1.7", "mlflow>=3.1,<3.18", "apache-airflow>=3.1,<3.4",
                        "kedro-mlflow>=2,<2.1", "apache-airflow-providers-cncf-kubernetes>=10,<11",
                        "kedro-airflow>=0.11,<0.12"):
        assert requirement in setup, requirement


# --- Kedro -------------------------------------------------------------------------------------

def test_kedro_session_shims(tmp_path):
    from kedro_projects import relay_project

    project = relay_project(tmp_path, package="compat_relay")  # its own process: Kedro's globals
    out = _run(f"""
        from pathlib import Path
        from airflow_kedro_mlflow.compat.kedro import register_hooks
        from airflow_kedro_mlflow.config.kedro_project import bootstrap, config_loader, create_session
        bootstrap(Path({str(project)!r}))
        loader = config_loader(Path({str(project)!r}), None, None, {{"count": 9}})
        session = create_session(Path({str(project)!r}), env=None, conf_source=None,
                                 with_hooks=False, save_version="2026-v1",
                                 runtime_params={{"count": 9}}, loader=loader)
        marker = type("Marker", (), {{}})()
        register_hooks(session, marker)
        context = session.load_context()
        print(session.session_id, session.store["session_id"],
              session._hook_manager.is_registered(marker), context.config_loader is loader,
              context.params["count"])
    """)
    assert out == "2026-v1 2026-v1 True True 9", _changed(
        "kedro", "kedro", "KedroSession's hook manager, store or config loader")


def test_sessions_never_import_the_telemetry_plugins_hooks(tmp_path):
    """kedro-telemetry is installed (a Kedro dependency) and its hook is an entry point: Kedro
    imports it for every session; ours block it before it is imported."""
    from kedro_projects import relay_project

    project = relay_project(tmp_path, package="compat_telemetry")
    out = _run(f"""
        import sys
        from pathlib import Path
        from airflow_kedro_mlflow.config.kedro_project import bootstrap, create_session
        bootstrap(Path({str(project)!r}))
        session = create_session(Path({str(project)!r}), env=None, conf_source=None)
        session.load_context()
        ours = "kedro_telemetry.plugin" in sys.modules
        from kedro.framework.session import KedroSession
        KedroSession.create(project_path=Path({str(project)!r}))  # Kedro's own, not blocked
        print(ours, "kedro_telemetry.plugin" in sys.modules)
    """)
    assert out == "False True", _changed(
        "kedro", "kedro", "how KedroSession makes its hook manager (_create_hook_manager)")


def test_kedro_versioned_dataset_shims(tmp_path):
    from kedro.io import Version
    from kedro_datasets.json import JSONDataset

    from airflow_kedro_mlflow.compat import kedro as shim

    message = _changed("kedro", "kedro", "AbstractVersionedDataset's internals")
    dataset = JSONDataset(filepath=str(tmp_path / "x.json"), version=Version(None, "v1"))
    assert shim.version_of(dataset) == Version(None, "v1"), message
    path = shim.versioned_path(dataset, "v1")
    assert str(path) == str(tmp_path / "x.json" / "v1" / "x.json"), message
    assert not shim.path_exists(dataset, str(path)), message
    dataset.save({"a": 1})
    assert shim.path_exists(dataset, str(path)), message
    assert shim.filesystem_of(dataset) is not None and shim.protocol_of(dataset) == "file", message
    shim.invalidate_cache(dataset)
    plain = JSONDataset(filepath=str(tmp_path / "y.json"))
    assert shim.version_of(plain) is None and str(shim.filepath_of(plain)).endswith("y.json"), message
    assert shim.wrapped_dataset(dataset) is None


def test_kedro_memory_dataset_copy_mode_shim():
    out = _run("""
        from airflow_kedro_mlflow.compat.kedro import wrap_memory_copy_mode
        import functools
        def wrap(original):
            @functools.wraps(original)
            def wrapped(data):
                return original(data)
            return wrapped
        first, second = wrap_memory_copy_mode(wrap), wrap_memory_copy_mode(wrap)
        from kedro.io import MemoryDataset
        print(first, second, MemoryDataset({"a": [1]}).load() == {"a": [1]})
    """)
    assert out == "True False True", _changed("kedro", "kedro", "kedro.io.memory_dataset's copy mode")


def test_dynaconf_loaders_shim():
    import inspect

    from airflow_kedro_mlflow.compat.dynaconf import INSPECTING_MODULES, modules_using

    found = [module.__name__ for module in modules_using(inspect)]
    assert found == list(INSPECTING_MODULES), _changed("dynaconf", "dynaconf",
                                                       "where its loaders import inspect")


def test_dynaconf_imports_without_flask_which_stays_importable():
    out = _run("""
        import sys
        from airflow_kedro_mlflow.compat.dynaconf import import_without_flask
        import_without_flask()
        loaded = "dynaconf" in sys.modules, "flask" in sys.modules
        from dynaconf.contrib import flask_dynaconf
        import flask.config
        print(loaded, flask_dynaconf.flask_installed, flask.config.Config.__name__)
    """)
    assert out == "(True, False) False Config", _changed(
        "dynaconf", "dynaconf", "how its Flask extension imports Flask")


# --- kedro-mlflow, MLflow, Airflow, Kubernetes, kedro-airflow ---------------------------------

def test_kedro_mlflow_model_dataset_shim():
    out = _run("""
        from kedro_mlflow.io.models import MlflowModelTrackingDataset
        from airflow_kedro_mlflow.compat import kedro_mlflow as shim
        dataset = MlflowModelTrackingDataset(flavor="mlflow.sklearn")
        before = shim.last_saved_model_uri(dataset), shim.user_defined_model_uri(dataset)
        shim.set_last_saved_model_uri(dataset, "models:/m-1")
        print(before == (None, None), hasattr(dataset, "_last_saved_model_uri"),
              hasattr(dataset, "_user_defined_model_uri"), shim.last_saved_model_uri(dataset))
    """, env=with_kedro_mlflow(True))
    assert out == "True True True models:/m-1", _changed(
        "kedro-mlflow", "kedro_mlflow", "MlflowModelTrackingDataset's model URI attributes")


def test_mlflow_active_run_stack_shim():
    from mlflow.tracking import fluent

    from airflow_kedro_mlflow.compat.mlflow import active_runs

    runs = active_runs(fluent)
    assert isinstance(runs, list), _changed("mlflow", "mlflow", "fluent's stack of active runs")
    assert active_runs(fluent) is runs  # the stack itself, not a copy


def test_airflow_executor_safeguard_shim():
    from airflow.sdk.bases.operator import ExecutorSafeguard

    from airflow_kedro_mlflow.compat.airflow import executing_inside_task

    operator = object()
    with executing_inside_task(operator):
        inside = ExecutorSafeguard.tracker.get(None)
    assert inside is operator, _changed("apache-airflow-task-sdk", "airflow",
                                        "ExecutorSafeguard.tracker")
    assert ExecutorSafeguard.tracker.get(None) is not operator


def test_kubernetes_deserializer_shim():
    spec = {"spec": {"containers": [{"name": "base", "image": "img:1"}], "unknown_key": 1}}
    out = _run(f"""
        import json
        from airflow_kedro_mlflow.compat.kubernetes import deserialize
        model, kept = deserialize({spec!r}, "V1Pod")
        print(json.dumps([type(model).__name__, model.spec.containers[0].image,
                          "unknown_key" in kept["spec"]]))
    """, env=with_kubernetes())
    assert json.loads(out) == ["V1Pod", "img:1", False], _changed(
        "kubernetes", "kubernetes", "ApiClient's deserializer")


def test_kedro_airflow_group_shim():
    import click

    from airflow_kedro_mlflow.compat.kedro_airflow import airflow_group

    group = airflow_group()
    assert isinstance(group, click.Group) and "create" in group.commands, _changed(
        "kedro-airflow", "kedro_airflow", "its plugin's airflow command group")


@pytest.mark.parametrize("distribution", sorted(CHECKED))
def test_checked_versions_are_the_tested_ones(distribution):
    """CHECKED says what the shims were tested with: the test environment's versions."""
    name = "apache-airflow-task-sdk" if distribution.startswith("apache-airflow") else distribution
    extras = {"kedro-mlflow": "kedro-mlflow", "kubernetes": "kubernetes"}
    if distribution in extras:
        folder = Path(sys.prefix) / "extras" / extras[distribution]
        versions = [p.name.removesuffix(".dist-info").split("-")[1]
                    for p in folder.glob(f"{distribution.replace('-', '_')}-*.dist-info")]
        assert versions and versions[0] in CHECKED[distribution], (distribution, versions)
        return
    assert importlib.metadata.version(name) in CHECKED[distribution], distribution


def test_kedro_resolver_deprecation_is_quiet_in_tasks(tmp_path):
    (tmp_path / "base").mkdir()
    (tmp_path / "local").mkdir()
    out = _run(f"""
        import warnings
        from airflow_kedro_mlflow.compat.kedro import quiet_resolver_deprecation
        from kedro.config import OmegaConfigLoader
        quiet_resolver_deprecation()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("default")
            quiet_resolver_deprecation()  # the task's filter, over the default ones
            OmegaConfigLoader(conf_source={str(tmp_path)!r})["parameters"]
        print([str(w.message)[:40] for w in caught if "register_new_resolver" in str(w.message)])
    """)
    assert out == "[]", _changed("kedro", "kedro", "where Kedro registers OmegaConf resolvers")
