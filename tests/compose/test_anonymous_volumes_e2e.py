"""A compose project's anonymous volume (`- /data`) on the native engine (root, a real registry,
runc + conmon): filled from the image, kept across a replacement of its container, removed by the
prune that removes the service (the scenario: tests/helpers/anonymous_volumes.py). One engine of
the test's own; teardown fails the test if anything is left.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import anonymous_volumes
from tests.helpers.host import Host
from tests.helpers.registry import RegistryServer

pytestmark = [pytest.mark.root, pytest.mark.registry, pytest.mark.slow]


def test_an_anonymous_volume_is_the_containers_own_across_replacements(
    tmp_path: Path, host: Host, registry: RegistryServer, monkeypatch: pytest.MonkeyPatch,
) -> None:
    for var in ("ROUND", "COMPOSE_PROJECT_NAME", "COMPOSE_PROFILES", "COMPOSE_FILE"):
        monkeypatch.delenv(var, raising=False)
    image = anonymous_volumes.seeded_image(registry, tmp_path / "layout")
    rt = host.runtime()
    try:
        anonymous_volumes.run(rt, lambda d: host.cli("apply", str(d)), tmp_path / "anon", "anon", image, "default")
    finally:
        rt.close()
