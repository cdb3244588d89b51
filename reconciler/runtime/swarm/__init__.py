"""The Swarm backend: the Runtime protocol on a Docker Swarm cluster, through a manager's Engine API.

    services                  ContainerConfig <-> ServiceSpec, what a cluster refuses (pure)
    rollout                   where a service's rollout stands, from one look (pure)
    backend.SwarmRuntime      the Runtime protocol and `base.ServiceEngine` on top of
                              runtime.docker.api.EngineAPI (the Docker backend's client)

`SwarmRuntime.from_docker_host(os.environ.get("DOCKER_HOST"))` opens the manager DOCKER_HOST
names (default /var/run/docker.sock) and checks that it is one.
"""

from __future__ import annotations

from reconciler.runtime.swarm.backend import SwarmRuntime

__all__ = ["SwarmRuntime"]
