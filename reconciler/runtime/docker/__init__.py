"""The Docker backend: the Runtime protocol over an existing Docker or Podman Engine API.

    api.EngineAPI        thin Engine API calls on the Unix socket (httpx), errors mapped
    backend.DockerRuntime the Runtime protocol on top of it

`DockerRuntime(socket_path="/var/run/docker.sock")`; for Podman pass its API socket
(`podman system service unix:///run/podman/podman.sock`).
"""

from __future__ import annotations

from reconciler.runtime.docker.backend import DockerRuntime

__all__ = ["DockerRuntime"]
