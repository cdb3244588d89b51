"""One template, two CLIs, one engine: `reconcile ps/images --format` prints what the real
docker CLI prints for the same template through the Engine API (`reconcile engine-api`) on the
same native engine, for the fields both define the same way."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from tests.api.test_engine_api import REPO, docker, engine_api, engine_args  # noqa: F401 - engine_api: a fixture
from tests.helpers.host import Host

pytestmark = [pytest.mark.root, pytest.mark.registry,
              pytest.mark.skipif(shutil.which("docker") is None, reason="needs the docker CLI")]


def reconcile(host: Host, *args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "reconciler", *args, *engine_args(host)], cwd=REPO,
                          capture_output=True, text=True, check=False, timeout=120)
    assert proc.returncode == 0, f"reconcile {' '.join(args)}: {proc.stderr}"
    return proc.stdout


def test_ps_and_images_templates_print_as_the_docker_cli_does(engine_api: str, host: Host,  # noqa: F811
                                                              busybox_image: str) -> None:
    docker(engine_api, "pull", busybox_image)
    docker(engine_api, "run", "-d", "--name", "web", "--network", "none", "-l", "tier=front", "-l", "app=web",
           "-v", "fmtvol:/data", busybox_image, "sleep", "3600")
    docker(engine_api, "create", "--name", "made", "--network", "none", "-l", "tier=back", busybox_image,
           "sh", "-c", "echo a command longer than twenty")
    docker(engine_api, "exec", "web", "sh", "-c", "head -c 100000 /dev/zero > /blob")     # a SIZE of its own

    for args in (
        ["ps", "-a", "--format", "table {{.ID}}\\t{{.Names}}\\t{{.Image}}\\t{{.Command}}\\t{{.Ports}}\\t{{.State}}\\t"
         "{{.Labels}}\\t{{.Mounts}}\\t{{.LocalVolumes}}\\t{{.Networks}}\\t{{.CreatedAt}}"],
        ["ps", "-a", "--format", '{{.Names}}: {{.Label "tier"}} {{json .Labels}} {{upper .State}} {{.Label "none"}}'],
        ["ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.Command}} {{.Mounts}}"],
        ["ps", "--format", "table {{.Names}}\\t{{if eq .State \"running\"}}up{{else}}down{{end}}"],
        # sizes: measured for -s and for a template that shows .Size (the engine's, through either CLI)
        ["ps", "-a", "-s", "--format", "table {{.Names}}\\t{{.Size}}"], ["ps", "-a", "--format", "{{.Names}} {{.Size}}"],
        ["images", "--format", "table {{.Repository}}\\t{{.Tag}}\\t{{.ID}}\\t{{.Digest}}\\t{{.Size}}"],
        ["images", "--no-trunc", "--format", "{{.ID}} {{.Repository}}:{{.Tag}} {{.CreatedAt}} {{.VirtualSize}}"],
        ["images", "--format", "json"],
    ):
        ours = reconcile(host, *args)
        theirs = docker(engine_api, *args).stdout
        assert ours == theirs, f"{args}:\nreconcile:\n{ours}\ndocker:\n{theirs}"

    # --format json: the same fields; the same values but where they are measured at another
    # moment (ages); no size measured by either ("0B": `json` shows no .Size to docker's check)
    ours_rows = [json.loads(line) for line in reconcile(host, "ps", "-a", "--format", "json").splitlines()]
    theirs_rows = [json.loads(line) for line in docker(engine_api, "ps", "-a", "--format", "json").stdout.splitlines()]
    moving = {"RunningFor": "", "Status": ""}
    assert [r | moving for r in ours_rows] == [r | moving for r in theirs_rows]
    assert len(ours_rows) == 2
    assert [r["Size"] for r in ours_rows] == ["0B", "0B"]
    # -s: the table docker prints, SIZE last; a template's .Size of what the container wrote
    ours = reconcile(host, "ps", "-a", "-s").splitlines()
    theirs = docker(engine_api, "ps", "-a", "-s").stdout.splitlines()
    assert [line.split("   ")[-1] for line in ours] == [line.split("   ")[-1] for line in theirs]
    assert ours[0].split()[-2:] == ["NAMES", "SIZE"]
    assert reconcile(host, "ps", "--format", "{{.Size}}").startswith("100kB (virtual ")
