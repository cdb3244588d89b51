"""Which optional capabilities (the small protocols of runtime.base) each engine has, as the
executor finds them with isinstance: renaming (start-first updates), connecting a container to a
network again (a container found off one of its networks), building and pushing
images, supervision loops its holder must run, host plumbing it makes again when asked, archive transfer (container import), a cluster
whose containers are services (Swarm: tests/swarm/test_mapping.py), a restart in one step
(`reconcile restart`), a container's inspect document (`port`), processes (`top`) and usage (`stats`), files copied in and out (`cp`)."""

from __future__ import annotations

from reconciler.runtime import base

PROTOCOLS = (base.Renaming, base.Connecting, base.ImageBuilding, base.ImagePushing, base.Supervised, base.Healing,
             base.ArchiveTransfer, base.ServiceEngine, base.Restarting, base.Inspecting, base.ProcessListing,
             base.Statistics, base.PathCopying)
CAPABILITIES = {
    "fake": {"Renaming", "Connecting"},
    "native": {"Renaming", "Connecting", "ImageBuilding", "ImagePushing", "Supervised", "Healing", "ArchiveTransfer",
               "Restarting", "Inspecting", "ProcessListing", "Statistics", "PathCopying"},
    # dockerd supervises its containers itself; it builds and pushes an Image with build: (POST /build)
    "docker": {"Renaming", "Connecting", "ImageBuilding", "ImagePushing", "ArchiveTransfer", "Restarting", "Inspecting",
               "ProcessListing", "Statistics", "PathCopying"},
    # Podman restarts its containers itself; its healthchecks are reconciler's loop (podman.py)
    "podman": {"Renaming", "Connecting", "ImageBuilding", "ImagePushing", "ArchiveTransfer", "Supervised",
               "Restarting", "Inspecting", "ProcessListing", "Statistics", "PathCopying"},
}


def test_each_engine_has_its_capabilities(runtime: base.Runtime) -> None:
    assert {p.__name__ for p in PROTOCOLS if isinstance(runtime, p)} == CAPABILITIES[runtime.name]
