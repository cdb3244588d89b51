"""docker's management-command forms (`reconcile container ls`, `container start`, `image ls`...),
run as a user runs them against a real native engine: each form prints, on the same streams,
byte for byte, and exits with what its top-level command prints and exits with, and does what it
does."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest

from reconciler.cli.main import main
from tests.helpers.host import Host

pytestmark = [pytest.mark.root, pytest.mark.registry]

Result = tuple[int, str, str]


def reconcile(host: Host, capfd: pytest.CaptureFixture[str], words: Sequence[str], *args: str) -> Result:
    """`reconcile WORDS [engine flags] ARGS...` in this process: exit code, stdout, stderr (the
    flags right after the command's words: `container exec NAME CMD...` ends with the container's;
    commit, pause and unpause take no --runtime)."""
    capfd.readouterr()
    flags = host.cli_args()[:-2] if words[-1] in ("commit", "pause", "unpause") else host.cli_args()
    code = main([*words, *flags, *args])
    out, err = capfd.readouterr()
    return code, out, err


def same(host: Host, capfd: pytest.CaptureFixture[str], command: Sequence[str], form: Sequence[str],
         *args: str) -> Result:
    """What `form ARGS` gives, checked equal to what `command ARGS` gives (run just before and just
    after it: an age such as "3 seconds ago" may move on between two runs, not past both)."""
    before = reconcile(host, capfd, command, *args)
    got = reconcile(host, capfd, form, *args)
    after = reconcile(host, capfd, command, *args)
    assert got in (before, after), f"reconcile {' '.join(form)} {' '.join(args)}: {got!r} != {before!r}"
    return got


def test_the_container_forms_print_and_exit_as_their_commands(
        host: Host, busybox_image: str, capfd: pytest.CaptureFixture[str]) -> None:
    assert reconcile(host, capfd, ["run"], "-d", "--name", "web", "-l", "tier=front", busybox_image, "sh", "-c",
                     "echo out; echo err >&2; exec sleep 3600")[0] == 0
    assert reconcile(host, capfd, ["run"], "--name", "job", busybox_image, "sh", "-c", "echo done; exit 3")[0] == 3

    ps = same(host, capfd, ["ps"], ["container", "ls"], "-a")
    assert ps[0] == 0
    assert {"web", "job"} <= set(ps[1].split())
    for form in (["container", "ps"], ["container", "list"]):
        same(host, capfd, ["ps"], form, "-a")
    for args in (("-q",), ("-a", "--no-trunc"), ("-a", "-o", "json"), ("--filter", "label=tier=front"),
                 ("-a", "--format", "{{.Names}} {{.State}} {{.Label \"tier\"}}")):
        assert same(host, capfd, ["ps"], ["container", "ls"], *args)[0] == 0
    assert same(host, capfd, ["inspect"], ["container", "inspect"], "web", "job")[0] == 0
    assert same(host, capfd, ["inspect"], ["container", "inspect"], "-f", "{{.State.ExitCode}}", "job")[1] == "3\n"
    assert same(host, capfd, ["inspect"], ["container", "inspect"], "web", "nope")[0] == 1
    assert same(host, capfd, ["logs"], ["container", "logs"], "web")[1:] == ("out\n", "err\n")
    assert same(host, capfd, ["logs"], ["container", "logs"], "-t", "job")[0] == 0
    assert same(host, capfd, ["wait"], ["container", "wait"], "job")[:2] == (0, "3\n")
    assert same(host, capfd, ["exec"], ["container", "exec"], "web", "sh", "-c", "echo a; echo b >&2; exit 4") == (
        4, "a\n", "b\n")
    assert same(host, capfd, ["exec"], ["container", "exec"], "job", "true")[0] != 0      # not running
    assert "sleep 3600" in same(host, capfd, ["top"], ["container", "top"], "web")[1]
    assert same(host, capfd, ["top"], ["container", "top"], "job")[0] == 1
    same(host, capfd, ["port"], ["container", "port"], "web")
    assert same(host, capfd, ["stats"], ["container", "stats"], "--no-stream", "nope")[0] == 1
    code, out, _ = reconcile(host, capfd, ["container", "stats"], "--no-stream", "-o", "json", "web")
    assert code == 0
    assert [row["name"] for row in json.loads(out)] == ["web"]           # (its figures move on: not compared)
    assert same(host, capfd, ["images"], ["image", "ls"])[0] == 0
    for args in (("-q",), ("--no-trunc", "--digests"), ("-o", "yaml")):
        same(host, capfd, ["images"], ["image", "list"], *args)
    # what a command refuses, refused alike (the same words on stderr, the same exit code)
    for command, form, args in ((["start"], ["container", "start"], ("nope",)),
                                (["stop"], ["container", "stop"], ("nope",)),
                                (["restart"], ["container", "restart"], ("nope",)),
                                (["kill"], ["container", "kill"], ("job",)),
                                (["rm"], ["container", "rm"], ("nope",)),
                                (["rm"], ["container", "remove"], ("web",)),     # running: refused without -f
                                (["pause"], ["container", "pause"], ("job",)),
                                (["unpause"], ["container", "unpause"], ("web",)),
                                (["rename"], ["container", "rename"], ("nope", "other")),
                                (["cp"], ["container", "cp"], ("nope:/etc/hostname", "-")),
                                (["commit"], ["container", "commit"], ("nope",))):
        code, out, err = same(host, capfd, command, form, *args)
        assert code != 0, (form, code, out, err)
        assert err, form
    # a usage error: as the command's (docker's 125 for create and run, else 2)
    assert reconcile(host, capfd, ["container", "create"], "--bogus", busybox_image)[0] == 125
    assert reconcile(host, capfd, ["container", "run"], "--bogus", busybox_image)[0] == 125
    assert reconcile(host, capfd, ["container", "ls"], "--bogus")[0] == 2


def test_the_container_forms_act_as_their_commands(
        host: Host, busybox_image: str, capfd: pytest.CaptureFixture[str]) -> None:
    """Each acting form on one of two twin containers, its command on the other: the same
    output (but the name) and exit code, the same state left."""
    for name in ("twin-one", "twin-two"):
        assert reconcile(host, capfd, ["run"], "-d", "--name", name, busybox_image, "sleep", "3600")[0] == 0

    def status(name: str) -> tuple[str, bool]:
        doc = json.loads(reconcile(host, capfd, ["inspect"], name)[1])[0]
        return doc["State"]["Status"], doc["State"]["Paused"]

    for verb, args in (("pause", ()), ("unpause", ()), ("stop", ("-t", "1")), ("start", ()),
                       ("restart", ("-t", "1")), ("kill", ("-s", "KILL")), ("start", ())):
        one = reconcile(host, capfd, [verb], *args, "twin-one")
        two = reconcile(host, capfd, ["container", verb], *args, "twin-two")
        assert one[0] == 0, one
        assert (two[0], two[1].replace("twin-two", "NAME"), two[2]) == (one[0], one[1].replace("twin-one", "NAME"),
                                                                         one[2])
        assert status("twin-one") == status("twin-two")
    assert reconcile(host, capfd, ["container", "rename"], "twin-two", "twin-three")[:2] == (0, "")
    assert reconcile(host, capfd, ["container", "cp"], "twin-three:/etc/hostname", "-")[0] == 0
    assert reconcile(host, capfd, ["container", "rm"], "-f", "twin-three")[1] == "twin-three\n"
    assert reconcile(host, capfd, ["rm"], "-f", "twin-one")[1] == "twin-one\n"
    assert reconcile(host, capfd, ["ps"], "-aq") == (0, "", "")
