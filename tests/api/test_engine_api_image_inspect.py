"""The native Engine API's image inspect has Docker's shape (ImageInspect, not the list's
summary): read by the real docker CLI, and by reconciler's own Docker backend
(`reconcile images --runtime docker`), which both failed on an integer `Created`."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.api.test_engine_api import docker, engine_api  # noqa: F401 - the fixture

pytestmark = [pytest.mark.root, pytest.mark.registry,
              pytest.mark.skipif(shutil.which("docker") is None, reason="needs the docker CLI")]

REPO = Path(__file__).resolve().parents[2]


def test_image_inspect_has_dockers_shape_for_the_docker_cli_and_reconcilers_docker_backend(
        engine_api: str, busybox_image: str) -> None:  # noqa: F811
    docker(engine_api, "pull", busybox_image)
    docker(engine_api, "create", "--name", "src", "--network", "none", busybox_image, "true")
    docker(engine_api, "commit", "-a", "tester", "src", "local/dated:1")          # an image with a time
    docker(engine_api, "rm", "src")
    env = {**os.environ, "DOCKER_HOST": f"unix://{engine_api}"}
    listed = subprocess.run([sys.executable, "-m", "reconciler", "images", "--runtime", "docker"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=60, check=False)
    assert listed.returncode == 0, listed.stderr
    (line,) = [ln for ln in listed.stdout.splitlines() if "local/dated" in ln]
    assert re.search(r"(Less than a second|\d+ seconds?|About a minute) ago", line), line

    doc = json.loads(docker(engine_api, "image", "inspect", "local/dated:1").stdout)[0]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", doc["Created"]), doc["Created"]
    assert (doc["RepoTags"], doc["Author"], doc["Os"], doc["Architecture"]) == (["local/dated:1"], "tester", "linux", "amd64")
    assert doc["RootFS"]["Type"] == "layers"
    assert doc["Metadata"] == {"LastTagTime": "0001-01-01T00:00:00Z"}
    assert "Containers" not in doc                  # the list's summary fields are not the inspect's
    undated = json.loads(docker(engine_api, "image", "inspect", busybox_image).stdout)[0]
    assert undated["Created"] == "0001-01-01T00:00:00Z"                  # dockerd's, for an image without a time
    assert "local/dated" in docker(engine_api, "images", "--format", "{{.Repository}}").stdout
    # and in the list, Go's zero time as dockerd lists it: `docker images` says N/A (CLI 20.10) or
    # nothing (28), where it said 56 years ago
    shown = docker(engine_api, "images", "--format", "{{.Repository}}:{{.Tag}} {{.CreatedSince}}").stdout
    (since,) = [ln.removeprefix(busybox_image).strip() for ln in shown.splitlines() if ln.startswith(busybox_image)]
    assert since in ("N/A", ""), shown
    (line,) = [ln for ln in subprocess.run([sys.executable, "-m", "reconciler", "images", "--runtime", "docker"],
                                           cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
                                           check=True).stdout.splitlines() if "test/busybox" in ln]
    assert "years" not in line, line
