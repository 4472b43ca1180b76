"""The Task SDK's own path from a task's ``ti.get_dagrun_state`` to the execution API and back,
with a stand-in for the API server only: so a test sees the errors the SDK really raises.

``ExecutionApi`` answers ``GET dag-runs/{dag_id}/{run_id}/state`` as Airflow 3.3's route does
(``airflow/api_fastapi/execution_api/routes/dag_runs.py``), and a URL no route matches as FastAPI
does. ``deployment_comms`` is the supervisor of a deployment: the SDK's ``Client``, the
supervisor's request handling and the task's ``CommsDecoder``, talking msgpack frames over a
socket pair; ``dag_test_comms`` is ``dag.test()``'s in-process supervisor.
"""

from __future__ import annotations

import contextlib
import itertools
import re
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import msgspec
import structlog
from airflow.sdk.api.client import Client
from airflow.sdk.execution_time.comms import CommsDecoder, _RequestFrame
from airflow.sdk.execution_time.supervisor import (
    ActivitySubprocess,
    InProcessSupervisorComms,
    InProcessTestSupervisor,
    set_supervisor_comms,
)

_STATE_ROUTE = re.compile(r"/execution/dag-runs/(?P<dag_id>[^/]+)/(?P<run_id>[^/]+)/state")


class ExecutionApi:
    """Airflow's execution API, as far as DAG run states go."""

    def __init__(self, runs: dict[tuple[str, str], str], routes: bool = True,
                 unreachable: str | None = None):
        self.runs = runs
        self.routes = routes
        """False: a server (or proxy) without the route, which answers every URL 404."""
        self.unreachable = unreachable
        """The text of the connection error every request meets, if any."""
        self.asked: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.asked.append(request.url.path)
        if self.unreachable:
            raise httpx.ConnectError(self.unreachable, request=request)
        match = _STATE_ROUTE.fullmatch(request.url.path) if self.routes else None
        if match is None:
            return httpx.Response(404, json={"detail": "Not Found"})
        dag_id, run_id = match["dag_id"], match["run_id"]
        if (dag_id, run_id) in self.runs:
            return httpx.Response(200, json={"state": self.runs[dag_id, run_id]})
        return httpx.Response(404, json={"detail": {
            "reason": "not_found",
            "message": f"Dag run with dag_id '{dag_id}' and run_id '{run_id}' was not found",
        }})

    def client(self) -> Client:
        """The SDK's client, without its retries (as ``dag.test()`` has it): they end in the same
        error, only later."""
        return InProcessTestSupervisor._Client(
            base_url="http://api-server.test/execution/", token="task-token",
            transport=httpx.MockTransport(self))


class _Supervisor:
    """The supervisor's request handling, the Task SDK's own code, without a task process."""

    decoder = ActivitySubprocess.decoder
    _subprocess_schema_version = None
    handle_requests = ActivitySubprocess.handle_requests
    _handle_request = ActivitySubprocess._handle_request
    _deserialize_request = ActivitySubprocess._deserialize_request
    _serialize_response = ActivitySubprocess._serialize_response
    send_msg = ActivitySubprocess.send_msg

    def __init__(self, client: Client, stdin: socket.socket | None = None):
        self.client = client
        self.stdin = stdin


class _DeploymentComms:
    """The task's end of the supervisor's socket, the supervisor answering in the same thread."""

    def __init__(self, client: Client):
        self.task_end, supervisor_end = socket.socketpair()
        self._sockets = (self.task_end, supervisor_end)
        self.task = CommsDecoder(socket=self.task_end)
        self.requests = _Supervisor(client, stdin=supervisor_end).handle_requests(
            structlog.get_logger())
        next(self.requests)
        self._ids = itertools.count()

    def send(self, msg: Any) -> Any:
        wire = self.task._make_frame(msg).as_bytes()
        request = msgspec.msgpack.Decoder(_RequestFrame).decode(bytes(wire[4:]))
        self.requests.send(request)  # the supervisor answers through the socket
        return self.task._get_response()

    def close(self) -> None:
        for end in self._sockets:
            end.close()


class _InProcessSupervisor(_Supervisor):
    send_msg = InProcessTestSupervisor.send_msg


@contextlib.contextmanager
def deployment_comms(api: ExecutionApi) -> Iterator[None]:
    comms = _DeploymentComms(api.client())
    try:
        with set_supervisor_comms(comms):
            yield
    finally:
        comms.close()


@contextlib.contextmanager
def dag_test_comms(api: ExecutionApi) -> Iterator[None]:
    supervisor = _InProcessSupervisor(api.client())
    comms = InProcessSupervisorComms(supervisor=supervisor)
    supervisor.comms = comms
    with set_supervisor_comms(comms):
        yield
