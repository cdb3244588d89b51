"""A streamed reply (logs, build, run through the agent) that fails after it began ends with an
error line the clients read, not an HTTP status line written into the started reply."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from reconciler.api import errors as apierr
from reconciler.api import thin
from reconciler.api.server import ApiServer
from reconciler.cli import _agentapi
from reconciler.runtime import errors as rterrors


class _FailingLogs:
    """An agent view whose logs stream fails after its first line: the engine cannot be made
    to fail there on demand, so this view's generator raises (served by the real server)."""

    def __init__(self, fault: BaseException) -> None:
        self.fault = fault

    def container_logs(self, name: str, *, follow: bool, since: str | None,
                       tail: int | None) -> Iterator[Mapping[str, Any]]:
        if name == "missing":
            raise apierr.NotFound(f"no such container: {name}")
        yield {"s": "stdout", "t": "2026-12-04T00:00:00Z", "d": "first"}
        raise self.fault


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Any]:
    servers: list[ApiServer] = []

    def start(view: object) -> str:
        server = ApiServer(view, tmp_path / f"api{len(servers)}.sock").start()   # type: ignore[arg-type]
        servers.append(server)
        return str(server.socket_path)

    yield start
    for server in servers:
        server.close()


@pytest.mark.parametrize(("fault", "status", "kind", "message"), [
    (RuntimeError("boom"), 500, rterrors.RuntimeBackendError, "internal error: RuntimeError"),
    (apierr.Conflict("the container went away", hint="run it again"), 409, rterrors.Conflict,
     "the container went away"),
])
def test_an_error_after_the_first_line_is_the_replys_last_line(
        serve: Any, fault: BaseException, status: int, kind: type[Exception], message: str) -> None:
    socket_path = serve(_FailingLogs(fault))
    code, values = thin.stream(socket_path, "/v1/containers/web/logs?follow=0")
    lines = list(values)
    assert code == 200
    assert lines[0] == {"s": "stdout", "t": "2026-12-04T00:00:00Z", "d": "first"}
    assert len(lines) == 2
    assert lines[1]["status"] == status
    assert lines[1]["error"] == message
    err = _agentapi.failed(lines[1])
    assert isinstance(err, kind)
    assert message in str(err)


def test_an_error_before_the_first_line_is_the_replys_status(serve: Any) -> None:
    socket_path = serve(_FailingLogs(RuntimeError("unused")))
    reply = thin.Lines(socket_path, "/v1/containers/missing/logs")
    assert reply.status == 404
    assert "no such container: missing" in reply.error()["error"]
