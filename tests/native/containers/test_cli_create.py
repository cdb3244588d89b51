"""`reconcile create`, run as a user runs it against a real native engine: it leaves a Created
container that `start` runs, as docker create, and exits as docker create."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

import pytest

from reconciler.cli.main import main
from tests.helpers.host import Host
from tests.native.containers.test_cli_everyday import Cli, autoremoved, until

pytestmark = [pytest.mark.root, pytest.mark.registry]

Result = tuple[int, str, str]


def reconcile(host: Host, capfd: pytest.CaptureFixture[str], words: Sequence[str], *args: str) -> Result:
    """`reconcile WORDS [engine flags] ARGS...` in this process: exit code, stdout, stderr (the
    flags right after the command's words: `create IMAGE CMD...` ends with the container's)."""
    capfd.readouterr()
    code = main([*words, *host.cli_args(), *args])
    out, err = capfd.readouterr()
    return code, out, err


def test_create_leaves_a_created_container_that_start_runs(
        host: Host, busybox_image: str, capfd: pytest.CaptureFixture[str]) -> None:
    assert reconcile(host, capfd, ["images"], "-q") == (0, "", "")
    code, out, err = reconcile(host, capfd, ["create"], "--name", "c1", "-e", "X=from create", busybox_image,
                               "sh", "-c", "echo $X; exit 5")
    assert code == 0, err
    assert re.fullmatch(r"[0-9a-f]{64}\n", out)                 # its full id, as docker create prints it
    assert reconcile(host, capfd, ["images"], "-q")[1]          # the image pulled first
    doc = json.loads(reconcile(host, capfd, ["inspect"], "c1")[1])[0]
    assert (doc["Id"], doc["State"]["Status"]) == (out.strip(), "created")
    ps = reconcile(host, capfd, ["ps"], "-a", "--format", "{{.Names}} {{.Status}}")[1]
    assert ps == "c1 Created\n"
    assert reconcile(host, capfd, ["ps"], "-q") == (0, "", "")  # it does not run
    assert reconcile(host, capfd, ["start"], "c1")[:2] == (0, "c1\n")
    assert reconcile(host, capfd, ["wait"], "c1")[1] == "5\n"
    assert reconcile(host, capfd, ["logs"], "c1")[1] == "from create\n"

    # docker's form, --rm: removed once it exited after its start, as docker container create --rm
    code, out, _ = reconcile(host, capfd, ["container", "create"], "--rm", "--name", "c2", busybox_image,
                             "sleep", "0.2")
    assert code == 0
    assert json.loads(reconcile(host, capfd, ["inspect"], "c2")[1])[0]["State"]["Status"] == "created"
    assert reconcile(host, capfd, ["container", "start"], "c2")[:2] == (0, "c2\n")

    autoremoved(Cli(host, capfd), "c2")

    # exit codes as docker create's: 125 for its options, 1 when the engine did not create it
    for args in (("-d", busybox_image), ("--bogus", busybox_image), ("-v", "nope", busybox_image),
                 ("-m", "lots", busybox_image), ("--restart", "sometimes", busybox_image), ()):
        assert reconcile(host, capfd, ["create"], *args)[0] == 125, args
    code, _, err = reconcile(host, capfd, ["create"], "--name", "c1", busybox_image)
    assert code == 1
    assert "c1" in err
    code, _, err = reconcile(host, capfd, ["create"], busybox_image.rpartition("/")[0] + "/nope:1")
    assert code == 1
    assert "nope" in err
    until("only c1 left", lambda: reconcile(host, capfd, ["ps"], "-a", "--format", "{{.Names}}")[1] == "c1\n")
