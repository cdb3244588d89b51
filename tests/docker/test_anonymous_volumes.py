"""A compose project's anonymous volume (`- /data`) through `reconcile apply --runtime docker` on
the host's dockerd and on the session's podman service (the Docker API): filled from the image,
kept across a replacement of its container, removed by the prune that removes the service (the
scenario: tests/helpers/anonymous_volumes.py). The project, owner, containers, network and volume
carry the test scope's prefix, which removes them even when the test fails.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.cli.main import main
from reconciler.runtime.docker import DockerRuntime
from reconciler.spec.building import anonymous_name
from tests.docker.conftest import Scope
from tests.helpers import anonymous_volumes
from tests.helpers.registry import RegistryServer

pytestmark = [pytest.mark.docker, pytest.mark.registry, pytest.mark.slow]


@pytest.mark.parametrize("kind", ["docker", pytest.param("podman", marks=[pytest.mark.root, pytest.mark.xdist_group("podman")])])
def test_an_anonymous_volume_is_the_containers_own_across_replacements(
    kind: str, request: pytest.FixtureRequest, registry: RegistryServer, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rt: DockerRuntime = request.getfixturevalue(kind)
    for var in ("ROUND", "COMPOSE_PROJECT_NAME", "COMPOSE_PROFILES", "COMPOSE_FILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("DOCKER_HOST", f"unix://{rt.api.socket_path}")
    image = anonymous_volumes.seeded_image(registry, tmp_path / "layout")
    scope = Scope(rt)
    project = scope.prefix
    scope.containers += [f"{project}-web-1", f"{project}-keep-1"]
    scope.networks.append(f"{project}_default")         # compose's default network: made by the apply
    scope.volumes.append(anonymous_name(f"{project}-web-1", "/data"))     # the scope's label is not on it
    scope.images.append(image)

    def apply(directory: Path) -> int:
        return main(["apply", str(directory), "--root", str(tmp_path / "root"), "--runtime", "docker",
                     "--owner", project])

    try:
        anonymous_volumes.run(rt, apply, tmp_path / project, project, image, project)
    finally:
        scope.cleanup()
