"""Thin Docker Engine API calls over the Unix socket: JSON in, dicts out, runtime errors out.

One method per endpoint the backend needs, grouped by resource like docker-py's `APIClient`
(but composed, not inherited, and typed). The API version is negotiated once from
`GET /version`: the server's `ApiVersion`, capped at the newest version this module speaks; a
service's create or update may name a newer one its body needs (the Swarm backend's
`request_version`: a manager drops a field its request's version does not know).
Podman's compat service answers the same calls.

Errors are mapped by status code at this boundary and httpx never leaks out:

    304            the call was a no-op (start a running container): returned as success
    400            InvalidArgument
    403            Conflict   (remove a predefined network or one with endpoints)
    404            NotFound
    409            AlreadyExists when the message says the name is taken, else Conflict
    503            Unavailable (a Swarm call on a node that is not a manager)
    404 non-JSON   MissingRoute (an Unavailable): the engine lacks the route (Podman has no
                   /distribution)
    5xx            RuntimeBackendError with the engine's message; Podman's 500s for a name
                   clash, "container state improper" and "fill out specgen" map like
                   Docker's 409/409/400
    no answer      Unavailable, with a hint about the socket
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
from collections.abc import Collection, Iterator, Mapping
from typing import Any
from urllib.parse import quote

import httpx

from reconciler.runtime import errors

__all__ = ["DEFAULT_SOCKET", "MAX_API_VERSION", "MIN_API_VERSION", "EngineAPI", "MissingRoute", "at_least",
           "auth_header_value", "from_docker_host", "version_key"]

DEFAULT_SOCKET = "/var/run/docker.sock"
MIN_API_VERSION = "1.40"    # Docker 19.03; Podman 4 compat speaks 1.41
MAX_API_VERSION = "1.43"    # the newest request/response shapes this module knows

_CONNECT_TIMEOUT = 5.0
_DEFAULT_TIMEOUT = 60.0


class MissingRoute(errors.Unavailable):
    """The engine has no such endpoint (dockerd's "page not found", Podman's plain-text 404):
    a caller with another way to the same answer takes it (Podman has no /distribution)."""


def _vtuple(v: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in v.split("."))
    except ValueError:
        return (0,)


def at_least(version: str, wanted: str) -> bool:
    """Whether Engine API `version` is `wanted` or newer."""
    return _vtuple(version) >= _vtuple(wanted)


def version_key(version: str) -> tuple[int, ...]:
    """An Engine API version as a sort key ("1.9" < "1.44")."""
    return _vtuple(version)


def _filters(labels: Mapping[str, str] | None) -> dict[str, str]:
    if not labels:
        return {}
    return {"filters": json.dumps({"label": [f"{k}={v}" for k, v in sorted(labels.items())]})}


def _q(name: str) -> str:
    """A name or reference as one path segment's worth of text (keeps / and : for refs)."""
    return quote(name, safe="/:@")


def auth_header_value(doc: Mapping[str, Any]) -> str:
    """Docker's AuthConfig as `X-Registry-Auth` carries it (and a map of them by registry, as
    `X-Registry-Config` carries them to a build): URL-safe base64 of its JSON, as the docker CLI
    sends it with a pull, a push, a build and a service's create or update."""
    return base64.urlsafe_b64encode(json.dumps(dict(doc)).encode()).decode()


def from_docker_host(host: str | None, *, what: str = "docker") -> EngineAPI:
    """The Engine API that a `DOCKER_HOST` value names, as the docker CLI reads it: unset or
    empty is the local socket, `unix:///path` a socket, `tcp://host:port` plain HTTP."""
    value = (host or "").strip()
    if not value:
        return EngineAPI(DEFAULT_SOCKET, what=what)
    scheme, sep, rest = value.partition("://")
    if sep and scheme == "unix" and rest:
        return EngineAPI(rest, what=what)
    if sep and scheme == "tcp" and rest:
        if os.environ.get("DOCKER_TLS_VERIFY"):
            raise errors.InvalidArgument(
                f"DOCKER_HOST={value} with DOCKER_TLS_VERIFY: TLS to the engine is not supported",
                hint="reach the engine's Unix socket instead (e.g. `ssh -L /tmp/d.sock:/var/run/docker.sock "
                "HOST`, then DOCKER_HOST=unix:///tmp/d.sock)")
        address = rest.rstrip("/")
        return EngineAPI(address, transport=httpx.HTTPTransport(), what=what, base_url=f"http://{address}")
    raise errors.InvalidArgument(
        f"DOCKER_HOST={value!r} is not unix:///PATH or tcp://HOST:PORT",
        hint="for ssh://, forward the engine's socket (`ssh -L /tmp/d.sock:/var/run/docker.sock HOST`) "
        "and set DOCKER_HOST=unix:///tmp/d.sock")


class EngineAPI:
    """A Docker (or Podman compat) Engine API client on a Unix socket.

    `transport` replaces the socket transport (httpx.MockTransport in unit tests, or a TCP
    transport with `base_url` http://HOST:PORT); `what` names the engine in error messages.
    """

    def __init__(
        self,
        socket_path: str = DEFAULT_SOCKET,
        *,
        transport: httpx.BaseTransport | None = None,
        what: str = "docker",
        base_url: str = "http://docker",
    ) -> None:
        self.socket_path = socket_path     # the socket, or HOST:PORT for a TCP engine
        self.what = what
        self._client = httpx.Client(
            transport=transport or httpx.HTTPTransport(uds=socket_path),
            base_url=base_url,
            timeout=httpx.Timeout(_DEFAULT_TIMEOUT, connect=_CONNECT_TIMEOUT),
        )
        self._check_socket = transport is None
        self._prefix: str | None = None
        self._version: dict[str, Any] | None = None

    # -- plumbing ---------------------------------------------------------------------------

    def close(self) -> None:
        self._client.close()

    def version(self) -> dict[str, Any]:
        """`GET /version` (unversioned), cached; negotiates the API version as a side effect."""
        if self._version is None:
            resp = self._send("GET", "/version", versioned=False)
            data = self._json(resp, "/version")
            if not isinstance(data, dict):
                raise errors.Unavailable(f"{self.what}: /version answered {data!r}")
            server = str(data.get("ApiVersion", "0"))
            if _vtuple(server) < _vtuple(MIN_API_VERSION):
                raise errors.Unavailable(
                    f"{self.what} speaks Engine API {server}, older than {MIN_API_VERSION}",
                    hint="upgrade the engine (Docker 19.03+ or Podman 4+)",
                )
            use = min(server, MAX_API_VERSION, key=_vtuple)
            oldest = str(data.get("MinAPIVersion") or MIN_API_VERSION)
            if _vtuple(oldest) > _vtuple(use):
                # Docker 29 refuses every request below 1.44 ("client version 1.43 is too old"):
                # the oldest it speaks is the nearest to the shapes this module knows (1.44 added
                # fields and deprecated some; none this module sends or reads changed meaning)
                use = oldest
            self._prefix = f"/v{use}"
            self._version = data
        return self._version

    @property
    def cli(self) -> str:
        """The engine's own command, for what a hint tells the user to run: `podman` for Podman,
        else `docker`."""
        return "podman" if self.what == "podman" else "docker"

    @property
    def _service(self) -> str:
        """The systemd unit that serves the engine's socket, for a hint."""
        return "podman.socket" if self.what == "podman" else "docker"

    @property
    def api_version(self) -> str:
        self.version()
        assert self._prefix is not None
        return self._prefix[2:]

    def _url(self, path: str, versioned: bool, api_version: str | None = None) -> str:
        if self._check_socket and not os.path.exists(self.socket_path):
            # checked up front: a failed connect on a missing path leaks httpcore's socket
            raise errors.Unavailable(
                f"{self.what} socket {self.socket_path} does not exist",
                hint=f"start the engine (`systemctl start {self._service}`) or pass its socket path")
        if not versioned:
            return path
        if self._prefix is None:
            self.version()
        if api_version is not None:             # a request whose body needs a newer version than the one spoken
            return f"/v{api_version}{path}"
        return f"{self._prefix}{path}"

    def _unavailable(self, exc: Exception, path: str) -> errors.Unavailable:
        if isinstance(exc, httpx.TimeoutException):
            return errors.Unavailable(
                f"{self.what} did not answer {path} in time ({type(exc).__name__})",
                hint=f"the engine may be overloaded; retry, or check `systemctl status {self._service}`",
            )
        return errors.Unavailable(
            f"cannot reach {self.what} at {self.socket_path}: {exc}",
            hint=f"is the engine running and is {self.socket_path} readable by this user?",
        )

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        content: Any = None,
        timeout: float | None = _DEFAULT_TIMEOUT,
        versioned: bool = True,
        what: str = "",
        headers: Mapping[str, str] | None = None,
        api_version: str | None = None,
    ) -> httpx.Response:
        url = self._url(path, versioned, api_version)
        kwargs: dict[str, Any] = {"params": {k: v for k, v in (params or {}).items() if v is not None},
                                  "headers": dict(headers or {})}
        if body is not None:
            kwargs["json"] = body
        if content is not None:                      # a tar stream (image load, archive upload)
            kwargs["content"] = content
            kwargs["headers"]["Content-Type"] = "application/x-tar"
        kwargs["timeout"] = httpx.Timeout(timeout, connect=_CONNECT_TIMEOUT)
        try:
            resp = self._client.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            raise self._unavailable(exc, path) from None
        self._raise_for_status(resp, what or path)
        return resp

    @contextlib.contextmanager
    def _stream(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        content: Any = None,
        timeout: float | None = None,
        what: str = "",
        headers: Mapping[str, str] | None = None,
    ) -> Iterator[Iterator[bytes]]:
        """A streamed response body as byte chunks; transport errors become Unavailable.
        `content`: a tar stream sent as the body (a build's context)."""
        url = self._url(path, True)
        kwargs: dict[str, Any] = {
            "params": {k: v for k, v in (params or {}).items() if v is not None},
            "timeout": httpx.Timeout(timeout, connect=_CONNECT_TIMEOUT),
            "headers": dict(headers or {}),
        }
        if body is not None:
            kwargs["json"] = body
        if content is not None:
            kwargs["content"] = content
            kwargs["headers"]["Content-Type"] = "application/x-tar"
        try:
            with self._client.stream(method, url, **kwargs) as resp:
                if resp.status_code >= 400:
                    resp.read()
                    self._raise_for_status(resp, what or path)

                def chunks() -> Iterator[bytes]:
                    try:
                        yield from resp.iter_bytes()
                    except httpx.HTTPError as exc:
                        raise self._unavailable(exc, path) from None

                yield chunks()
        except httpx.HTTPError as exc:
            raise self._unavailable(exc, path) from None

    def _json(self, resp: httpx.Response, path: str) -> Any:
        if resp.status_code == 204 or resp.status_code == 304 or not resp.content:
            return None
        try:
            return resp.json()
        except ValueError:
            raise errors.Unavailable(
                f"{self.what} answered {path} with something that is not JSON: {resp.text[:200]!r}"
            ) from None

    def _raise_for_status(self, resp: httpx.Response, what: str) -> None:
        code = resp.status_code
        if code < 400:
            return
        try:
            message = str(resp.json().get("message", "")) or resp.text
        except (ValueError, AttributeError):
            message = resp.text
        message = message.strip() or f"HTTP {code}"
        text = f"{self.what}: {what}: {message}"
        low = message.lower()
        json_body = resp.headers.get("content-type", "").startswith("application/json")
        if code == 404 and (low == "page not found" or not json_body):
            # the engine has no such route (Docker says "page not found", Podman answers text)
            raise MissingRoute(
                f"{self.what} does not implement {resp.request.url.path}",
                hint="this call needs a newer engine or Docker rather than Podman")
        if code == 400 or (code >= 500 and ("fill out specgen" in low or "invalid argument" in low)):
            # (Podman reports requests it cannot translate as a 500 "fill out specgen: ...")
            raise errors.InvalidArgument(text)
        if code == 404:
            raise errors.NotFound(text)
        if code >= 500 and "is being used" in low:
            # (Podman reports the removal of a network that containers use as a 500)
            raise errors.Conflict(text, hint="remove or disconnect the containers that use it first")
        if code == 409 or (code >= 500 and "name" in low and "already in use" in low):
            # (Podman reports a name clash as a 500)
            if "already in use" in low or "already exists" in low:
                raise errors.AlreadyExists(text, hint="choose another name or remove the existing object")
            raise errors.Conflict(text)
        if code == 503:
            raise errors.Unavailable(text, hint="is the engine a Swarm manager? (`docker info`, `docker swarm init`)")
        if code == 403 or (code >= 500 and "state improper" in low):
            # (Podman reports "container state improper" as a 500)
            raise errors.Conflict(text)
        if code == 500 and ("no such" in low or "not found" in low) and "image" in low:
            raise errors.NotFound(text)
        raise errors.RuntimeBackendError(text)

    def _get(self, path: str, params: Mapping[str, Any] | None = None, what: str = "",
             headers: Mapping[str, str] | None = None) -> Any:
        return self._json(self._send("GET", path, params=params, what=what, headers=headers), path)

    def _post(
        self,
        path: str,
        body: Any = None,
        params: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = _DEFAULT_TIMEOUT,
        what: str = "",
        headers: Mapping[str, str] | None = None,
        api_version: str | None = None,
    ) -> Any:
        resp = self._send("POST", path, params=params, body=body, timeout=timeout, what=what, headers=headers,
                          api_version=api_version)
        return self._json(resp, path)

    def _delete(self, path: str, params: Mapping[str, Any] | None = None, what: str = "") -> Any:
        return self._json(self._send("DELETE", path, params=params, what=what), path)

    # -- system -----------------------------------------------------------------------------

    def ping(self) -> bool:
        self._send("GET", "/_ping", versioned=False)
        return True

    def info(self) -> dict[str, Any]:
        data: dict[str, Any] = self._get("/info")
        return data

    # -- images -----------------------------------------------------------------------------

    @contextlib.contextmanager
    def image_pull(self, name: str, tag: str, *, registry_auth: str | None = None) -> Iterator[Iterator[dict[str, Any]]]:
        """`POST /images/create?fromImage=&tag=`: the progress messages as they arrive.
        `registry_auth`: the X-Registry-Auth value the engine pulls with (None: anonymously)."""
        with self._stream(
            "POST", "/images/create", params={"fromImage": name, "tag": tag},
            timeout=None, what=f"pull {name}:{tag}", headers=_auth_header(registry_auth),
        ) as chunks:
            yield _json_lines(chunks)

    def distribution(self, ref: str, *, registry_auth: str | None = None) -> dict[str, Any]:
        """`GET /distribution/{ref}/json`: the registry's descriptor of `ref`, asked by the engine
        (with the X-Registry-Auth `registry_auth`, if any)."""
        data: dict[str, Any] = self._get(f"/distribution/{_q(ref)}/json", what=f"resolve {ref}",
                                         headers=_auth_header(registry_auth))
        return data

    @contextlib.contextmanager
    def image_build(self, context: Iterator[bytes], params: Mapping[str, Any], *,
                    registry_config: str | None = None) -> Iterator[Iterator[dict[str, Any]]]:
        """`POST /build` with the context's tar as the body: the engine's messages as they arrive
        (`stream` lines, `aux` with the image id, `error`). `registry_config`: the X-Registry-Config
        value (the credentials for the registries its FROM lines pull from)."""
        headers = {"X-Registry-Config": registry_config} if registry_config else {}
        with self._stream("POST", "/build", params=params, content=context, timeout=None,
                          what=f"build {params.get('t') or 'an image'}", headers=headers) as chunks:
            yield _json_lines(chunks)

    def image_tag(self, ref: str, repo: str, tag: str) -> None:
        """`POST /images/{ref}/tag?repo=&tag=`: `repo:tag` names the image `ref` names too."""
        # (dockerd answers an empty 201, Podman a newline: neither is read)
        self._send("POST", f"/images/{_q(ref)}/tag", params={"repo": repo, "tag": tag}, what=f"tag {ref} as {repo}:{tag}")

    @contextlib.contextmanager
    def image_push(self, repo: str, tag: str, *, registry_auth: str) -> Iterator[Iterator[dict[str, Any]]]:
        """`POST /images/{repo}/push?tag=`: the progress messages as they arrive (`aux` has the
        pushed manifest's digest). dockerd wants an X-Registry-Auth with every push (an empty
        AuthConfig, `{}`, pushes anonymously)."""
        with self._stream("POST", f"/images/{_q(repo)}/push", params={"tag": tag}, timeout=None,
                          what=f"push {repo}:{tag}", headers=_auth_header(registry_auth)) as chunks:
            yield _json_lines(chunks)

    def image_list(self) -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = self._get("/images/json") or []
        return data

    def image_inspect(self, ref: str) -> dict[str, Any]:
        data: dict[str, Any] = self._get(f"/images/{_q(ref)}/json", what=f"image {ref}")
        return data

    def image_history(self, ref: str) -> list[dict[str, Any]]:
        """`GET /images/{ref}/history`: its steps, newest first (Id, Created, CreatedBy, Tags,
        Size, Comment)."""
        data: list[dict[str, Any]] = self._get(f"/images/{_q(ref)}/history", what=f"image {ref}") or []
        return data

    def image_remove(self, ref: str, *, force: bool = False) -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = self._delete(
            f"/images/{_q(ref)}", {"force": _b(force)}, what=f"remove image {ref}") or []
        return data

    # -- containers -------------------------------------------------------------------------

    def container_list(self, labels: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = self._get("/containers/json", {"all": "1", **_filters(labels)}) or []
        return data

    def container_sizes(self, ids: Collection[str]) -> dict[str, tuple[int, int]]:
        """(SizeRw, SizeRootFs) of the containers of `ids` (full ids), as `docker ps -s` asks them
        (`size=1`: the engine measures each one listed, so only these are listed)."""
        if not ids:
            return {}
        data = self._get("/containers/json", {"all": "1", "size": "1",
                                              "filters": json.dumps({"id": sorted(ids)})}) or []
        return {str(c["Id"]): (int(c.get("SizeRw") or 0), int(c.get("SizeRootFs") or 0))
                for c in data if c.get("Id") in ids}

    def container_ids(self, status: str) -> list[str]:
        """The ids of the containers in `status` (running, exited, ...)."""
        data = self._get("/containers/json", {"all": "1", "filters": json.dumps({"status": [status]})}) or []
        return [str(c["Id"]) for c in data]

    def libpod_healthcheck(self, ident: str) -> dict[str, Any]:
        """Podman's `GET /libpod/containers/{id}/healthcheck`: run the check now, keep its result."""
        return self._libpod(f"/libpod/containers/{_q(ident)}/healthcheck", f"healthcheck of container {ident}")

    def _libpod(self, path: str, what: str) -> dict[str, Any]:
        """GET one of Podman's own endpoints, under Podman's version (it refuses Docker's API
        versions there, and routes no unversioned path)."""
        full = f"/v{self.version().get('Version') or '4.0.0'}{path}"
        data: dict[str, Any] = self._json(self._send("GET", full, versioned=False, what=what), path)
        return data

    def libpod_image_inspect(self, ref: str) -> dict[str, Any]:
        """Podman's own `GET /libpod/images/{name}/json` (it has the image's Healthcheck; the compat one does not)."""
        return self._libpod(f"/libpod/images/{_q(ref)}/json", f"image {ref}")

    def libpod_network_inspect(self, name: str) -> dict[str, Any]:
        """Podman's own `GET /libpod/networks/{name}/json` (it names the bridge; the compat one does not)."""
        return self._libpod(f"/libpod/networks/{_q(name)}/json", f"network {name}")

    def container_create(self, name: str, body: Mapping[str, Any], *, api_version: str | None = None) -> dict[str, Any]:
        """`api_version`: the version to send it at, when `body` has a field newer than the one spoken."""
        data: dict[str, Any] = self._post("/containers/create", body, {"name": name},
                                          what=f"create container {name}", api_version=api_version)
        return data

    def container_update(self, ident: str, body: Mapping[str, Any]) -> list[str]:
        """`docker update`: the engine's warnings."""
        data = self._post(f"/containers/{_q(ident)}/update", body, what=f"update container {ident}") or {}
        return [str(w) for w in data.get("Warnings") or ()]

    def container_inspect(self, ident: str) -> dict[str, Any]:
        data: dict[str, Any] = self._get(f"/containers/{_q(ident)}/json", what=f"container {ident}")
        return data

    def container_start(self, ident: str) -> None:
        self._post(f"/containers/{_q(ident)}/start", what=f"start container {ident}")

    def container_stop(self, ident: str, timeout: int | None) -> None:
        wait = None if timeout is None else timeout + _DEFAULT_TIMEOUT
        self._post(f"/containers/{_q(ident)}/stop", params={"t": timeout}, timeout=wait,
                   what=f"stop container {ident}")

    def container_top(self, ident: str, ps_args: str | None) -> dict[str, Any]:
        data: dict[str, Any] = self._get(f"/containers/{_q(ident)}/top", {"ps_args": ps_args},
                                         what=f"processes of container {ident}")
        return data

    def container_stats(self, ident: str) -> dict[str, Any]:
        """One sample of the container's stats (`stream=0`, `one-shot=1`: no wait for a second one)."""
        data: dict[str, Any] = self._get(f"/containers/{_q(ident)}/stats", {"stream": "0", "one-shot": "1"},
                                         what=f"stats of container {ident}")
        return data

    def container_restart(self, ident: str, timeout: int | None) -> None:
        wait = None if timeout is None else timeout + _DEFAULT_TIMEOUT
        self._post(f"/containers/{_q(ident)}/restart", params={"t": timeout}, timeout=wait,
                   what=f"restart container {ident}")

    def container_kill(self, ident: str, signal: str) -> None:
        self._post(f"/containers/{_q(ident)}/kill", params={"signal": signal},
                   what=f"kill container {ident}")

    def container_rename(self, ident: str, new_name: str) -> None:
        self._post(f"/containers/{_q(ident)}/rename", params={"name": new_name},
                   what=f"rename container {ident} to {new_name}")

    def container_remove(self, ident: str, *, force: bool = False, volumes: bool = False) -> None:
        self._delete(f"/containers/{_q(ident)}", {"force": _b(force), "v": _b(volumes)},
                     what=f"remove container {ident}")

    def container_wait(self, ident: str, timeout: float | None) -> dict[str, Any]:
        data: dict[str, Any] = self._post(
            f"/containers/{_q(ident)}/wait", params={"condition": "not-running"},
            timeout=timeout, what=f"wait for container {ident}")
        return data

    @contextlib.contextmanager
    def container_logs(
        self, ident: str, *, follow: bool, since: str | None, tail: str,
    ) -> Iterator[Iterator[bytes]]:
        params = {"stdout": "1", "stderr": "1", "timestamps": "1", "follow": _b(follow),
                  "since": since, "tail": tail}
        with self._stream("GET", f"/containers/{_q(ident)}/logs", params=params,
                          timeout=None if follow else _DEFAULT_TIMEOUT,
                          what=f"logs of {ident}") as chunks:
            yield chunks

    @contextlib.contextmanager
    def container_attach(self, ident: str) -> Iterator[Iterator[bytes]]:
        """The container's output from now until it exits (stdout and stderr; no stdin, no logs
        from before): attached before a start, as `docker run` reads it, no byte is missed."""
        with self._stream("POST", f"/containers/{_q(ident)}/attach",
                          params={"stream": "1", "stdout": "1", "stderr": "1"}, timeout=None,
                          what=f"attach to {ident}") as chunks:
            yield chunks

    def network_connect(self, network: str, container: str, endpoint: Mapping[str, Any], *,
                        api_version: str | None = None) -> None:
        """`api_version`: the version to send it at, when `endpoint` has a field newer than the one spoken."""
        body = {"Container": container, "EndpointConfig": dict(endpoint)}
        # (dockerd answers an empty 200, Podman a plain-text "OK": neither is read)
        self._send("POST", f"/networks/{_q(network)}/connect", body=body,
                   what=f"connect {container} to network {network}", api_version=api_version)

    def network_disconnect(self, network: str, container: str, *, force: bool = False) -> None:
        """`force`: also from a network whose endpoint the engine cannot find any more."""
        self._send("POST", f"/networks/{_q(network)}/disconnect", body={"Container": container, "Force": force},
                   what=f"disconnect {container} from network {network}")

    # -- exec -------------------------------------------------------------------------------

    def exec_create(self, ident: str, body: Mapping[str, Any]) -> dict[str, Any]:
        data: dict[str, Any] = self._post(f"/containers/{_q(ident)}/exec", body,
                                          what=f"exec in container {ident}")
        return data

    @contextlib.contextmanager
    def exec_start(self, exec_id: str, *, tty: bool) -> Iterator[Iterator[bytes]]:
        with self._stream("POST", f"/exec/{_q(exec_id)}/start", body={"Detach": False, "Tty": tty},
                          timeout=None, what=f"start exec {exec_id[:12]}") as chunks:
            yield chunks

    def exec_inspect(self, exec_id: str) -> dict[str, Any]:
        data: dict[str, Any] = self._get(f"/exec/{_q(exec_id)}/json", what=f"exec {exec_id[:12]}")
        return data

    # -- networks ---------------------------------------------------------------------------

    def network_list(self, labels: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = self._get("/networks", _filters(labels)) or []
        return data

    def network_inspect(self, name: str, *, scope: str | None = None) -> dict[str, Any]:
        """`scope`: "swarm" asks a manager for the cluster's network of that name only."""
        data: dict[str, Any] = self._get(f"/networks/{_q(name)}", {"scope": scope}, what=f"network {name}")
        return data

    def network_create(self, body: Mapping[str, Any]) -> dict[str, Any]:
        data: dict[str, Any] = self._post("/networks/create", body,
                                          what=f"create network {body.get('Name')}")
        return data

    def network_remove(self, name: str) -> None:
        self._delete(f"/networks/{_q(name)}", what=f"remove network {name}")

    # -- volumes ----------------------------------------------------------------------------

    def image_load(self, chunks: Iterator[bytes]) -> list[str]:
        """POST /images/load: what the engine says it loaded ("Loaded image: ..." lines)."""
        resp = self._send("POST", "/images/load", params={"quiet": "1"}, content=chunks, timeout=None,
                          what="load images")
        said: list[str] = []
        for line in resp.text.splitlines():
            with contextlib.suppress(ValueError):
                msg = json.loads(line)
                if msg.get("error") or msg.get("errorDetail"):
                    raise errors.ImageError(f"{self.what}: load images: {msg.get('error') or msg['errorDetail']}")
                said += [x.strip() for x in str(msg.get("stream", "")).splitlines() if x.strip()]
        return said

    def container_put_archive(self, ident: str, path: str, chunks: Iterator[bytes], *,
                              copy_uid_gid: bool = False) -> None:
        """PUT /containers/{id}/archive: unpack a tar at `path` (volumes mounted there included);
        `copy_uid_gid` (`docker cp -a`): owned by the container's user."""
        self._send("PUT", f"/containers/{_q(ident)}/archive",
                   params={"path": path, "copyUIDGID": "1" if copy_uid_gid else None}, content=chunks,
                   timeout=None, what=f"copy into container {ident}")

    def container_stat_path(self, ident: str, path: str) -> dict[str, Any]:
        """HEAD /containers/{id}/archive: the PathStat of `path` (its X-Docker-Container-Path-Stat)."""
        resp = self._send("HEAD", f"/containers/{_q(ident)}/archive", params={"path": path},
                          what=f"stat {path} in container {ident}")
        raw = resp.headers.get("X-Docker-Container-Path-Stat", "")
        try:
            stat: dict[str, Any] = json.loads(base64.b64decode(raw)) if raw else {}
        except ValueError:
            raise errors.Unavailable(f"{self.what} answered a stat of {path} with {raw[:100]!r}") from None
        return stat

    @contextlib.contextmanager
    def container_get_archive(self, ident: str, path: str) -> Iterator[Iterator[bytes]]:
        """GET /containers/{id}/archive: `path` as a tar stream."""
        with self._stream("GET", f"/containers/{_q(ident)}/archive", params={"path": path}, timeout=None,
                          what=f"copy {path} from container {ident}") as chunks:
            yield chunks

    def volume_list(self, labels: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        data = self._get("/volumes", _filters(labels)) or {}
        vols: list[dict[str, Any]] = data.get("Volumes") or []
        return vols

    def volume_inspect(self, name: str) -> dict[str, Any]:
        data: dict[str, Any] = self._get(f"/volumes/{_q(name)}", what=f"volume {name}")
        return data

    def volume_create(self, body: Mapping[str, Any]) -> dict[str, Any]:
        data: dict[str, Any] = self._post("/volumes/create", body,
                                          what=f"create volume {body.get('Name')}")
        return data

    def volume_remove(self, name: str) -> None:
        self._delete(f"/volumes/{_q(name)}", what=f"remove volume {name}")


    # -- swarm (services, tasks, nodes: a manager answers; other engines say 503) --------

    def service_list(self, labels: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = self._get("/services", _filters(labels), what="list services") or []
        return data

    def service_inspect(self, ident: str) -> dict[str, Any]:
        data: dict[str, Any] = self._get(f"/services/{_q(ident)}", what=f"service {ident}")
        return data

    def service_create(
        self, body: Mapping[str, Any], *, registry_auth: str | None = None, api_version: str | None = None,
    ) -> dict[str, Any]:
        """`registry_auth`: the X-Registry-Auth value the manager passes to the nodes that pull;
        `api_version`: the version to send it at, when `body` has a field newer than the one spoken
        (a manager drops such a field from an older version's request)."""
        data: dict[str, Any] = self._post("/services/create", body, what=f"create service {body.get('Name')}",
                                          headers=_auth_header(registry_auth), api_version=api_version)
        return data

    def service_update(
        self, ident: str, version: int, body: Mapping[str, Any], *, registry_auth: str | None = None,
        api_version: str | None = None,
    ) -> dict[str, Any]:
        data: dict[str, Any] = self._post(f"/services/{_q(ident)}/update", body, {"version": str(version)},
                                          what=f"update service {ident}", headers=_auth_header(registry_auth),
                                          api_version=api_version)
        return data or {}

    def service_remove(self, ident: str) -> None:
        self._delete(f"/services/{_q(ident)}", what=f"remove service {ident}")

    @contextlib.contextmanager
    def service_logs(self, ident: str, *, follow: bool, since: str | None, tail: str) -> Iterator[Iterator[bytes]]:
        params = {"stdout": "1", "stderr": "1", "timestamps": "1", "follow": _b(follow),
                  "since": since, "tail": tail}
        with self._stream("GET", f"/services/{_q(ident)}/logs", params=params,
                          timeout=None if follow else _DEFAULT_TIMEOUT, what=f"logs of service {ident}") as chunks:
            yield chunks

    def task_list(self, filters: Mapping[str, list[str]] | None = None) -> list[dict[str, Any]]:
        params = {"filters": json.dumps(dict(filters))} if filters else {}
        data: list[dict[str, Any]] = self._get("/tasks", params, what="list tasks") or []
        return data

    def secret_list(self, labels: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = self._get("/secrets", _filters(labels), what="list secrets") or []
        return data

    def secret_create(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST /secrets/create (`Data` base64); the secret's {"ID": ...}."""
        data: dict[str, Any] = self._post("/secrets/create", body, what=f"create secret {body.get('Name')}")
        return data

    def secret_remove(self, ident: str) -> None:
        self._delete(f"/secrets/{_q(ident)}", what=f"remove secret {ident}")

    def node_list(self) -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = self._get("/nodes", what="list nodes") or []
        return data


def _auth_header(registry_auth: str | None) -> dict[str, str]:
    return {"X-Registry-Auth": registry_auth} if registry_auth else {}


def _b(flag: bool) -> str:
    return "1" if flag else "0"


def _json_lines(chunks: Iterator[bytes]) -> Iterator[dict[str, Any]]:
    """Newline- (or concatenation-) delimited JSON objects from a byte stream."""
    decoder = json.JSONDecoder()
    buf = ""
    for chunk in chunks:
        buf += chunk.decode("utf-8", "replace")
        while True:
            buf = buf.lstrip()
            if not buf:
                break
            try:
                obj, end = decoder.raw_decode(buf)
            except ValueError:
                break
            buf = buf[end:]
            if isinstance(obj, dict):
                yield obj
