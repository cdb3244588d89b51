"""compose's labels on a compose project's containers on the host's real dockerd, through
`reconcile apply --runtime docker`: `docker ps --filter label=com.docker.compose.project=NAME`
(the docker CLI, as Portainer, Dozzle and `docker compose ls` ask) finds them, with the project's
working_dir and config_files; the checkout moved to another directory replaces nothing (those two
are no part of the spec hash). The project's containers are removed afterwards, even when the test
fails.
"""

from __future__ import annotations

import json
import secrets
import shutil
import string
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.cli.main import main
from reconciler.runtime.docker import DockerRuntime
from tests.docker.conftest import PulledImage, remove_compose_project

pytestmark = [pytest.mark.docker, pytest.mark.registry, pytest.mark.slow]

COMPOSE = """
    services:
      web:
        image: {image}
        command: ["sleep", "3600"]
        network_mode: none
        stop_grace_period: 1s
    """


@pytest.fixture
def name(docker: DockerRuntime) -> Iterator[str]:
    """A project name of the test's own; the project is removed afterwards."""
    project = "clabel" + "".join(secrets.choice(string.ascii_lowercase) for _ in range(5))
    try:
        yield project
    finally:
        remove_compose_project(docker, project)


def docker_ps(name: str) -> list[dict[str, str]]:
    """What the docker CLI lists of the project: each container's name and labels."""
    if shutil.which("docker") is None:
        pytest.skip("no docker CLI")
    out = subprocess.run(["docker", "ps", "-a", "--filter", f"label=com.docker.compose.project={name}",
                          "--format", "{{json .}}"], capture_output=True, text=True, check=True, timeout=60).stdout
    rows = [json.loads(line) for line in out.splitlines() if line.strip()]
    return [{"name": r["Names"], **dict(kv.partition("=")[::2] for kv in r["Labels"].split(",") if kv)} for r in rows]


def test_docker_ps_finds_the_project_by_composes_labels_and_a_moved_checkout_replaces_nothing(
    name: str, docker: DockerRuntime, docker_image: PulledImage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    for var in ("COMPOSE_FILE", "COMPOSE_PROFILES"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("COMPOSE_PROJECT_NAME", name)
    first = tmp_path / "a" / "app"
    first.mkdir(parents=True)
    (first / "compose.yaml").write_text(textwrap.dedent(COMPOSE.format(image=docker_image.ref)))
    apply = ["--root", str(tmp_path / "root"), "--runtime", "docker", "--owner", name]

    assert main(["apply", str(first), *apply]) == 0
    [web] = docker_ps(name)
    assert web["name"] == f"{name}-web-1"
    # (the docker CLI's label column joins the labels with commas: config_files's own commas
    # would split it; one file here)
    assert {k: v for k, v in web.items() if k.startswith("com.docker.compose.")} == {
        "com.docker.compose.project": name, "com.docker.compose.service": "web",
        "com.docker.compose.container-number": "1", "com.docker.compose.oneoff": "False",
        "com.docker.compose.project.working_dir": str(first),
        "com.docker.compose.project.config_files": str(first / "compose.yaml")}
    ids = {c["Id"] for c in docker.api.container_list({"com.docker.compose.project": name})}

    second = tmp_path / "b" / "app"
    second.parent.mkdir()
    first.rename(second)
    assert main(["diff", str(second), *apply]) == 0
    assert main(["apply", str(second), *apply]) == 0
    assert {c["Id"] for c in docker.api.container_list({"com.docker.compose.project": name})} == ids
