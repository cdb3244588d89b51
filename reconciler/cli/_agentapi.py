"""Finding the running agent for status/events/rollback/reconcile-now, asking the agent of a
state root what it already knows (`served`: ps), and running containers and commands through
its engine (`run`, `create`, `engine`: exec), stdlib only."""

from __future__ import annotations

import os

# annotations only: what the read-only commands import at start-up stays small (#21)
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Iterator
    from typing import Any

__all__ = ["AgentEngine", "add_socket_flag", "agent_file", "client", "create", "engine", "printed", "run", "served",
           "streamed"]


def add_socket_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--socket", default=None,
                        help="the agent's API socket (default: $RECONCILER_SOCKET, the socket named in "
                        "<root>/agent.json, or for the default root /run/reconciler/reconciler.sock)")


def socket_path(args: argparse.Namespace) -> str | None:
    """The API socket of the agent these options name (it may not be running): --socket,
    $RECONCILER_SOCKET, the one `<root>/agent.json` names, or the default, for the default state
    root only. None for another root with no agent.json: an agent on the default socket holds
    the default root, and status, events, reconcile-now or rollback must not answer or act for
    it when `--root X` was asked about."""
    from reconciler.api.thin import DEFAULT_SOCKET
    from reconciler.cli.options import DEFAULT_ROOT

    given = args.socket or os.environ.get("RECONCILER_SOCKET") or _agent_socket(args)
    if given:
        return str(given)
    root = getattr(args, "root", None)
    if root and os.path.realpath(root) != os.path.realpath(DEFAULT_ROOT):
        return None
    return DEFAULT_SOCKET


def client(args: argparse.Namespace) -> Any:
    """An ApiClient for the agent these options name (it may not be running)."""
    from reconciler.api import client as api_client

    path = socket_path(args)
    if path is None:
        from reconciler.api import errors

        raise errors.AgentUnreachable(
            f"no agent runs for the state root {args.root} (it has no agent.json)",
            hint="start one with that root (`reconcile agent --config ...`), or pass --socket")
    return api_client.ApiClient(path)


def served(args: argparse.Namespace, path: str, body: Any = None, *, timeout: float = 30.0,
           **query: Any) -> Any | None:
    """What the agent that holds the state root `args.root` answers to GET `path` (POST with
    `body`, if any), or None when
    no agent runs there (no `<root>/agent.json`, or nobody answers on its socket) or it does not
    serve that (an older agent, another engine): the command then reads the root itself.

    The client–server split (#21): while an agent runs, a command it can answer is a thin
    client of it, loading no engine code and opening no database.
    """
    socket_path = _serving_socket(args)
    if socket_path is None:
        return None
    from reconciler.api import thin

    try:
        status, doc = thin.request(socket_path, "GET" if body is None else "POST", _path(path, query), body,
                                   timeout=timeout)
    except (OSError, ValueError):
        return None
    # any refusal (no such path or container, another engine, a bad argument, an agent's
    # failure): the command does it itself, and says what is wrong in its own words
    return None if status >= 400 else doc


def printed(args: argparse.Namespace, path: str, options: dict[str, Any], *,
            labels: dict[str, str] | None = None) -> str | None:
    """The text a listing command prints (`ps`, `images`: listing.py), rendered by the agent that
    holds `args.root` from GET `path` with these print options (and `labels` to match), or None
    as for `served`: the command then reads the root and renders it itself, by the same code.

    A thin client at its thinnest (#21): no json, re or datetime loaded. An agent that does not
    render (an older one) answers JSON: that is refused here too."""
    socket_path = _serving_socket(args)
    if socket_path is None:
        return None
    from reconciler.api import thin

    query = [f"print={options['output']}", *(f"{k}=1" for k, v in options.items() if v is True)]
    if labels:
        import json
        import urllib.parse

        query.append("labels=" + urllib.parse.quote(json.dumps(labels), safe=""))
    try:
        status, content_type, text = thin.text(socket_path, f"{path}?{'&'.join(query)}")
    except (OSError, ValueError):
        return None
    return text if status == 200 and content_type.startswith("text/plain") else None


def streamed(args: argparse.Namespace, path: str, *, timeout: float | None = None, body: Any = None,
             **query: Any) -> Iterator[Any] | None:
    """The JSON lines the agent that holds `args.root` streams for GET `path` (logs; POST with
    `body`, if any: a build), as they come (`timeout`: the longest wait for the next bytes);
    None as for `served`."""
    socket_path = _serving_socket(args)
    if socket_path is None:
        return None
    from reconciler.api import thin

    try:
        status, values = thin.stream(socket_path, _path(path, query), timeout=timeout, body=body)
    except (OSError, ValueError):
        return None
    if status != 200:
        values.close()
        return None
    return values


def run(args: argparse.Namespace, body: dict[str, Any]) -> Iterator[tuple[str, Any]] | None:
    """`reconcile run` without a terminal through the agent that holds `args.root`, in one
    request (POST /v1/run, #21): the steps parts.run_foreground yields, as the agent sends them
    (("id", ID), ("stdout" or "stderr", bytes), ("exit", code)); an error as the engine's error
    of its kind, with the agent's message. None when no agent answers there: the command runs
    on its own engine. Ctrl-C (SIGINT) once it started: the agent stops the container (the
    connection half-closed), its last lines and exit code follow; a second Ctrl-C leaves."""
    socket_path = _serving_socket(args)
    if socket_path is None:
        return None
    from reconciler.api import thin

    try:
        reply = thin.Lines(socket_path, "/v1/run", body=body, timeout=None)
    except (FileNotFoundError, ConnectionRefusedError):
        return None                     # a killed agent's stale file
    except (OSError, ValueError) as e:
        raise _unavailable(socket_path, e) from None
    if reply.status != 200:
        raise _error(reply.status, reply.error())
    return _steps(reply, socket_path, detach=body.get("detach") is True)


def create(args: argparse.Namespace, config: dict[str, Any], *, remove: bool) -> str | None:
    """`reconcile create` through the agent that holds `args.root` (POST /v1/containers, #21):
    the new container's id; an error as the engine's error of its kind, with the agent's
    message. None when no agent answers there: the command creates it on its own engine.
    `remove` (`create --rm`): an agent older than it, which made the container without
    removing it at its exit (its reply does not say `auto_remove`), has it removed again and is
    refused, as `exec` refuses one that would drop its -u/-w/-e."""
    socket_path = _serving_socket(args)
    if socket_path is None:
        return None
    from reconciler.api import thin

    body = {"config": config, "volatile": remove, "auto_remove": remove}
    try:
        status, doc = thin.request(socket_path, "POST", "/v1/containers", body, timeout=None)
    except (FileNotFoundError, ConnectionRefusedError):
        return None                     # a killed agent's stale file
    except (OSError, ValueError) as e:
        raise _unavailable(socket_path, e) from None
    if status != 200:
        raise _error(status, doc)
    cid = str(doc["id"])
    if remove and doc.get("auto_remove") is not True:
        agent = AgentEngine(socket_path)
        agent._call(agent._container(cid, "remove"), {"force": True})
        from reconciler.runtime import errors

        raise errors.Unavailable("the agent holding this state root is older than this reconcile: it cannot "
                                 "create a container that --rm removes at its exit",
                                 hint="restart the agent (it then runs this version), or leave --rm out")
    return cid


def _steps(reply: Any, socket_path: str, *, detach: bool) -> Iterator[tuple[str, Any]]:
    """What the agent's run sends, as parts.run_foreground's steps (see `run`)."""
    import signal

    def interrupted(*_: object) -> None:
        signal.signal(signal.SIGINT, signal.default_int_handler)     # a second Ctrl-C leaves
        reply.hangup()

    values = reply.values()
    try:
        for v in values:
            if "id" in v:
                if detach:
                    yield "id", v["id"]
                    return
                signal.signal(signal.SIGINT, interrupted)
                yield "id", v["id"]
            elif "s" in v:             # the bytes as written: a newline unless `n` says none ended them
                yield v["s"], v["d"].encode("latin-1") + (b"\n" if v.get("n", True) else b"")
            elif "exit_code" in v:
                yield "exit", int(v["exit_code"])
                return
            else:
                raise failed(v)
    except (OSError, ValueError) as e:
        raise _unavailable(socket_path, e) from None
    finally:
        values.close()
        signal.signal(signal.SIGINT, signal.default_int_handler)
    raise _unavailable(socket_path, "the reply ended before the container's exit code")


def _unavailable(socket_path: str, why: object) -> Exception:
    from reconciler.runtime import errors

    return errors.Unavailable(f"the agent on {socket_path} did not answer: {why}",
                              hint="see the agent's log; `reconcile status` says whether it runs")


def engine(args: argparse.Namespace) -> AgentEngine | None:
    """The engine of the agent that holds the state root `args.root`, when one answers on its
    socket, for `exec` (#21: the CLI then loads no engine code); None when no agent
    runs there: the command opens the engine itself."""
    socket_path = _serving_socket(args)
    if socket_path is None:
        return None
    import socket  # here: a run without an agent needs no socket module

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.settimeout(5.0)
            s.connect(socket_path)
        except OSError:
            return None                 # a killed agent's stale file
    return AgentEngine(socket_path)


class AgentEngine:
    """What `exec` asks of a container through an agent's API (`POST /v1/containers/NAME/exec`);
    an error reply is raised as the engine's error of that kind (NotFound, InvalidArgument,
    Conflict), with the agent's message."""

    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path

    def _call(self, path: str, body: dict[str, Any], *, timeout: float | None = 300.0) -> Any:
        from reconciler.api import thin

        try:
            status, doc = thin.request(self.socket_path, "POST", path, body, timeout=timeout)
        except (OSError, ValueError) as e:
            raise _unavailable(self.socket_path, e) from None
        if status >= 400:
            raise _error(status, doc)
        return doc

    def _container(self, name: str, action: str) -> str:
        import urllib.parse

        return f"/v1/containers/{urllib.parse.quote(name, safe='')}/{action}"

    def exec(self, name: str, argv: list[str], *, user: str | None = None, workdir: str | None = None,
             env: list[str] | None = None) -> Any:
        """Run `argv` in the running container `name` (as `user`, in `workdir`, with `env` over
        its environment, when given): an ExecResult once it ended."""
        from reconciler.runtime import base, errors

        body: dict[str, Any] = {"argv": list(argv)}
        body.update((k, v) for k, v in (("user", user), ("workdir", workdir), ("env", env)) if v)
        # with a user, workdir or env: `exec-as`, which an agent older than them refuses (404)
        # instead of running the command as the container's user, without them
        action = "exec-as" if len(body) > 1 else "exec"
        try:
            doc = self._call(self._container(name, action), body, timeout=None)
        except errors.NotFound as exc:
            if action == "exec" or "no container action" not in str(exc):
                raise
            raise errors.Unavailable("the agent holding this state root is older than this reconcile: it "
                                     "cannot run an exec with -u, -w or -e",
                                     hint="restart the agent (it then runs this version), or leave those "
                                          "options out") from None
        return base.ExecResult(exit_code=int(doc["exit_code"]), stdout=doc["stdout"].encode("latin-1"),
                               stderr=doc["stderr"].encode("latin-1"))

    def close(self) -> None:
        pass


def failed(line: Any) -> Exception:
    """The engine's error for the last line of a streamed reply that failed after it started
    ({"error", "hint", "status"}: api/server.py's `_stream_lines`)."""
    return _error(int(line.get("status", 500)) if isinstance(line, dict) else 500, line)


def _error(status: int, doc: Any) -> Exception:
    """The engine's error for an error reply of the agent (its message and hint kept)."""
    from reconciler.runtime import errors

    message = doc.get("error") if isinstance(doc, dict) else None
    hint = doc.get("hint") if isinstance(doc, dict) else None
    cls: type[errors.RuntimeBackendError] = {400: errors.InvalidArgument, 404: errors.NotFound,
                                             409: errors.Conflict}.get(status, errors.RuntimeBackendError)
    return cls(str(message or f"the agent answered {status}"), hint=hint)


def _agent_socket(args: argparse.Namespace) -> str | None:
    """The API socket of the agent that holds the state root `args.root`, if it says it runs."""
    data = agent_file(args)
    return str(data["socket"]) if data is not None and "socket" in data else None


def _serving_socket(args: argparse.Namespace) -> str | None:
    """The API socket of the agent that holds `args.root` when it runs the native engine and
    the command talks to that one (the default `--runtime`): the agent serves only its own."""
    data = agent_file(args)
    if data is None or "socket" not in data or getattr(args, "runtime", "native") != "native":
        return None
    return str(data["socket"]) if data.get("runtime", "native") == "native" else None


def agent_file(args: argparse.Namespace) -> dict[str, Any] | None:
    """What `<root>/agent.json` says (pid, socket, runtime), if an agent wrote one."""
    if not getattr(args, "root", None):
        return None
    try:                                        # os.path, not pathlib: ~5 ms less for `ps` (#21)
        with open(os.path.join(args.root, "agent.json"), encoding="utf-8") as f:
            text = f.read()
    except OSError:
        return None
    from reconciler import jsonscan  # not `json`: it imports re (#21); only when there is a file

    try:
        data = jsonscan.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _path(path: str, query: dict[str, Any]) -> str:
    q = {k: v for k, v in query.items() if v is not None}
    if not q:
        return path
    import urllib.parse  # only with a query: `ps` without one pays nothing

    return f"{path}?{urllib.parse.urlencode(q)}"
