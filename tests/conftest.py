"""Shared fixtures: an isolated Airflow home (SQLite), DAG export and DAG runs in subprocesses.

The Airflow environment is set when this module is imported, before anything imports Airflow,
because Airflow reads its configuration once, at import.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest_plugins = ["fault_deployment"]  # the fault deployment's session fixture (`faulty`)

REPO = Path(__file__).resolve().parents[1]
EXAMPLE_PROJECT = REPO / "examples" / "wine_classifier"
AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="akm-airflow-home-"))
DAGS_FOLDER = AIRFLOW_HOME / "dags"
DAGS_FOLDER.mkdir()

os.environ.update(
    {
        "AIRFLOW_HOME": str(AIRFLOW_HOME),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{AIRFLOW_HOME}/airflow.db",
        "KEDRO_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "1",
    }
)


def _own_deprecations_are_errors() -> str:
    """``PYTHONWARNINGS`` that turns DeprecationWarnings raised from this package's modules into
    errors in every subprocess of the tests (exports, DAG runs, Airflow components), as
    ``filterwarnings`` in setup.cfg does in the test process. (An entry names one module exactly.)"""
    package = REPO / "airflow_kedro_mlflow"
    modules = sorted(
        ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        for path in package.rglob("*.py")
    )
    own = [f"error::DeprecationWarning:{module}" for module in modules]
    return ",".join(filter(None, [os.environ.get("PYTHONWARNINGS"), *own]))


os.environ["PYTHONWARNINGS"] = _own_deprecations_are_errors()


@dataclass(repr=False)
class DagRunResult:
    run_id: str
    state: str
    tasks: dict[str, str | None]
    xcoms: dict[str, dict]
    output: str

    def __repr__(self) -> str:
        """The run's outcome and, for a failed task, the log from its traceback on."""
        start = self.output.find("Task failed with exception")
        excerpt = self.output[start : start + 8000] if start >= 0 else self.output[-5000:]
        return f"DAG run {self.run_id}: {self.state} {self.tasks}\n{excerpt}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_http(url: str, process: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited early:\n{log.read_text()[-5000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"{url} did not answer in {timeout}s:\n{log.read_text()[-5000:]}")


@contextlib.contextmanager
def background_process(command: list[str], log: Path, env: dict | None = None,
                       append: bool = False):
    """A server in its own process group, killed with all its children afterwards."""
    with open(log, "ab" if append else "wb") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, **(env or {})},
        )
    try:
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=20)
        # what the leader left in its group (idle executor workers, multiprocessing's resource
        # tracker) ends with it, not after the test run
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)


class MlflowServer:
    """A real ``mlflow server`` on loopback (SQLite backend, proxied artifacts) that a test can stop
    and start again on the same port and data, as an outage would."""

    def __init__(self, root: Path, artifacts_destination: str | None = None,
                 env: dict[str, str] | None = None) -> None:
        """``artifacts_destination`` (default: a folder of ``root``) is where the server proxies
        artifacts, e.g. ``s3://bucket/mlflow`` with the S3 keys in ``env`` (the server's own)."""
        self.root = root
        self.artifacts_destination = artifacts_destination or str(root / "artifacts")
        self.env = env or {}
        root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._stack: contextlib.ExitStack | None = None

    def start(self) -> None:
        command = [
            str(Path(sys.executable).with_name("mlflow")), "server",
            "--backend-store-uri", f"sqlite:///{self.root}/mlflow.db",
            "--artifacts-destination", self.artifacts_destination,
            "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
        ]
        self._stack = contextlib.ExitStack()
        log = self.root / "server.log"
        process = self._stack.enter_context(background_process(command, log, append=True,
                                                               env=self.env))
        wait_for_http(f"{self.url}/health", process, log)

    def stop(self) -> None:
        if self._stack is not None:
            self._stack.close()
            self._stack = None


@contextlib.contextmanager
def running_mlflow_server(root: Path, artifacts_destination: str | None = None,
                          env: dict[str, str] | None = None):
    server = MlflowServer(root, artifacts_destination, env)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory) -> str:
    """The URL of a real ``mlflow server`` shared by the session's tests."""
    with running_mlflow_server(tmp_path_factory.mktemp("mlflow-server")) as server:
        yield server.url


@dataclass(frozen=True)
class S3Endpoint:
    url: str

    def client(self, key: str = "test", secret: str = "test"):
        import boto3

        return boto3.client("s3", endpoint_url=self.url, aws_access_key_id=key,
                            aws_secret_access_key=secret, region_name="us-east-1")

    def ensure_bucket(self, bucket: str, key: str = "test", secret: str = "test") -> None:
        s3 = self.client(key, secret)
        if bucket not in [b["Name"] for b in s3.list_buckets()["Buckets"]]:
            s3.create_bucket(Bucket=bucket)

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory) -> S3Endpoint:
    """A real S3 HTTP API on loopback: moto in server mode, in its own process group."""
    root = tmp_path_factory.mktemp("moto")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)]
    with background_process(command, root / "moto.log") as process:
        wait_for_http(f"{url}/moto-api/", process, root / "moto.log")
        yield S3Endpoint(url)


@dataclass(frozen=True)
class AuthenticatingS3(S3Endpoint):
    """An S3 endpoint that checks signatures: only ``key``/``secret`` (an IAM user's) work."""

    key: str = ""
    secret: str = ""


@pytest.fixture(scope="session")
def s3_auth_server(tmp_path_factory) -> AuthenticatingS3:
    """moto with authentication on: the first requests (unauthenticated) create an IAM user."""
    import boto3

    root = tmp_path_factory.mktemp("moto-auth")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)]
    with background_process(command, root / "moto.log",
                            env={"INITIAL_NO_AUTH_ACTION_COUNT": "3"}) as process:
        wait_for_http(f"{url}/moto-api/", process, root / "moto.log")
        iam = boto3.client("iam", endpoint_url=url, region_name="us-east-1",
                           aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
        iam.create_user(UserName="tester")
        iam.put_user_policy(UserName="tester", PolicyName="all", PolicyDocument=json.dumps(
            {"Version": "2012-10-17",
             "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
        access = iam.create_access_key(UserName="tester")["AccessKey"]
        yield AuthenticatingS3(url, access["AccessKeyId"], access["SecretAccessKey"])


@pytest.fixture(autouse=True)
def _no_tracking_uri_leaks():
    """``mlflow.set_tracking_uri`` in a test also sets MLFLOW_TRACKING_URI in this process's
    environment, which every later subprocess (exports, DAG runs) would inherit: a project with
    no mlflow.yml would then track, to a server that may be gone. Each test starts as it found it."""
    before = os.environ.get("MLFLOW_TRACKING_URI")
    yield
    if before is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = before


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(AIRFLOW_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """An Airflow metadata DB (SQLite), migrated once per test session."""
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return AIRFLOW_HOME


@pytest.fixture(scope="session")
def node_python(tmp_path_factory) -> Path:
    """The interpreter of a second environment (Kedro and this package, no Airflow), built once."""
    from node_env import create_node_environment

    return create_node_environment(tmp_path_factory.mktemp("node-env") / "venv")


@pytest.fixture
def workspace(request, tmp_path_factory) -> Path:
    """A folder inside Airflow's DAGs folder (so ``dag.test()`` may run its DAGs), per test."""
    name = request.node.name.replace("[", "_").replace("]", "")[:60]
    folder = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=DAGS_FOLDER))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def copy_example(target: Path) -> Path:
    """A pristine copy of the example project (no outputs of earlier runs, e.g. of the demo)."""

    def ignore(folder: str, names: list[str]) -> set[str]:
        inside_data = (EXAMPLE_PROJECT / "data") in (Path(folder), *Path(folder).parents)
        return {
            name
            for name in names
            if name == "__pycache__"
            or (inside_data and name != ".gitkeep" and not (Path(folder) / name).is_dir())
        }

    shutil.copytree(EXAMPLE_PROJECT, target, ignore=ignore)
    return target


KEDRO_MLFLOW_PATH = Path(sys.prefix) / "extras" / "kedro-mlflow"


def with_kedro_mlflow(enabled: bool) -> dict[str, str] | None:
    """Environment for subprocesses that see kedro-mlflow (installed beside the venv by setup.sh)."""
    if not enabled:
        return None
    if not (KEDRO_MLFLOW_PATH / "kedro_mlflow").is_dir():
        raise RuntimeError(f"kedro-mlflow is not installed at {KEDRO_MLFLOW_PATH}: run scripts/setup.sh")
    return {**os.environ, "PYTHONPATH": str(KEDRO_MLFLOW_PATH)}


KUBERNETES_PATH = Path(sys.prefix) / "extras" / "kubernetes"


def with_kubernetes(env: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for subprocesses that see the cncf-kubernetes provider (beside the venv)."""
    if not (KUBERNETES_PATH / "airflow" / "providers" / "cncf" / "kubernetes").is_dir():
        raise RuntimeError(f"the cncf-kubernetes provider is not at {KUBERNETES_PATH}: run "
                           "scripts/setup.sh")
    env = dict(env or os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(KUBERNETES_PATH), env.get("PYTHONPATH")]))
    return env


def run_kedro(
    project: Path, *args: str, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run the ``kedro`` CLI of this environment in ``project``."""
    kedro = Path(sys.executable).with_name("kedro")
    result = subprocess.run(
        [str(kedro), *args], cwd=project, capture_output=True, text=True, timeout=600, env=env
    )
    if check and result.returncode != 0:
        raise AssertionError(f"kedro {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def load_exported_dag(dag_file: Path):
    """The one DAG of an exported DAG file, parsed as Airflow parses it (no import errors)."""
    from airflow_kedro_mlflow.export.dagbag import load_dagbag

    bag = load_dagbag(dag_file)
    assert bag.import_errors == {}, bag.import_errors
    return next(iter(bag.dags.values()))


def run_dag(
    dag_file: Path, dag_id: str, conf: dict | None = None, env: dict[str, str] | None = None
) -> DagRunResult:
    """``dag.test()`` of ``dag_id`` in a fresh interpreter; its final states."""
    with tempfile.TemporaryDirectory(prefix="dag-run-") as scratch:
        result_file = Path(scratch) / "result.json"
        command = [sys.executable, str(REPO / "tests" / "dag_runner.py"), str(result_file),
                   str(dag_file), dag_id]
        if conf is not None:
            command.append(json.dumps(conf))
        result = subprocess.run(command, capture_output=True, text=True, timeout=900, env=env)
        output = result.stdout + result.stderr
        if not result_file.exists():
            raise AssertionError(f"dag.test() of {dag_id} did not finish:\n{output[-20000:]}")
        data = json.loads(result_file.read_text())
    return DagRunResult(output=output, **data)


@pytest.hookimpl(trylast=True)  # after pytest-xdist's, which names each test's group
def pytest_collection_modifyitems(session, config, items):
    """The tests of one real deployment (an ``xdist_group``) first: they run on one worker each,
    as long as a third of the suite, so the other worker takes the rest and both end together
    (``-n 2 --dist loadgroup``, scripts/test.sh). A group that pytest-xdist failed to name (as
    with pytest 9.2) would be spread over both workers: that stops the run instead."""
    items.sort(key=lambda item: item.get_closest_marker("xdist_group") is None)
    if getattr(config.option, "loadgroup", False):
        ungrouped = [item.nodeid for item in items
                     if item.get_closest_marker("xdist_group") and "@" not in item.nodeid]
        if ungrouped:
            raise pytest.UsageError(
                f"pytest-xdist did not group {ungrouped[0]} (pytest "
                f"{pytest.__version__}): its group's tests would run on two workers at once")
