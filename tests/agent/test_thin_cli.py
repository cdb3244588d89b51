"""The client–server split (#21): while an agent holds a state root, `reconcile ps`, `inspect`,
`images`, `logs` and a `pull` of an image present are thin clients of the agent's socket (no engine
code, registry client or database loaded), and what they print is the same as when they read
the root themselves (no agent, or one that no longer answers)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from reconciler.api import thin as thin_api
from tests.agent.conftest import AgentProc, wait_for
from tests.agent.test_native import doc, state

pytestmark = [pytest.mark.root, pytest.mark.registry, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
COMMANDS = (("ps", "-a"), ("ps", "-a", "--no-trunc"), ("ps", "-a", "-o", "json"), ("ps", "-q"),
            ("ps", "-aq", "--filter", "label=tier=front"), ("inspect", "web", "job"), ("inspect", "web", "nope"),
            ("images",), ("images", "-o", "json"), ("images", "-q", "--no-trunc"), ("pull", "IMAGE"),
            ("pull", "-q", "IMAGE"), ("logs", "web"), ("logs", "-t", "job"), ("logs", "--tail", "1", "-f", "job"),
            ("logs", "nope"), ("logs", "--since", "yesterday", "job"),
            # the text the agent renders (listing.py): each print form of ps and images
            ("ps",), ("ps", "-a", "-o", "yaml"), ("ps", "--filter", "label=tier=front", "-o", "json"),
            ("ps", "-a", "--filter", "label=tier=back"), ("images", "--digests"), ("images", "-o", "yaml"),
            ("image", "ls", "-q"),
            # --format: the rows the agent serves as JSON, printed by the template here (gotemplate.py)
            ("ps", "-a", "--format", '{{.Names}} {{.State}} {{.Label "tier"}} {{.Networks}}'),
            ("ps", "--filter", "label=tier=front", "--format", "json"), ("inspect", "-f", "{{.State.Status}} {{.Name}}",
                                                                       "web", "job"),
            ("images", "--format", "table {{.Repository}}\\t{{.Tag}}\\t{{.Digest}}"),
            # the engine as docker info shows it: what the CLI reads of the root, the agent running or not
            ("info",), ("system", "info", "-f", "{{.Containers}} {{.ContainersRunning}} {{.ContainersStopped}} {{.Images}}"))
# what `ps` must not load when the agent answers: the engine's code, the state database, and
# http.client's email and ssl
ENGINE = ("sqlite3", "_sqlite3", "reconciler.runtime.native", "reconciler._sqlite", "http.client", "email", "ssl", "httpx",
          "reconciler.registry_client")


def reconcile(a: AgentProc, *argv: str, importtime: bool = False) -> subprocess.CompletedProcess[str]:
    """`reconcile ARGV` on the agent's root."""
    env = {**os.environ, "RECONCILER_ROOT": str(a.root), "RECONCILER_RUN_DIR": str(a.run_dir),
           "RECONCILER_PREFIX": a.prefix}
    return subprocess.run([sys.executable, *(["-X", "importtime"] if importtime else []), "-m", "reconciler",
                           *argv], cwd=REPO, env=env, capture_output=True, text=True, check=False, timeout=60)


def outputs(a: AgentProc, image: str) -> list[tuple[int, str, str]]:
    """Exit code, stdout and stderr of each of COMMANDS (IMAGE: `image`), with the ages
    ("Up 3 seconds", "4 seconds ago") made equal."""
    ages = re.compile(r"\b(\d+ seconds?|Less than a second|About a minute|\d+ minutes)\b")
    done = [reconcile(a, *(image if x == "IMAGE" else x for x in argv)) for argv in COMMANDS]
    return [(p.returncode, re.sub(r" {2,}", "  ", ages.sub("AGE", p.stdout)), p.stderr) for p in done]


def loaded(a: AgentProc, image: str) -> set[str]:
    """The modules `reconcile ps -a`, `inspect web`, `images`, `pull IMAGE` and `logs web` import."""
    modules: set[str] = set()
    for argv in (("ps", "-a"), ("inspect", "web"), ("images",), ("pull", image), ("logs", "web")):
        proc = reconcile(a, *argv, importtime=True)
        assert proc.returncode == 0, proc.stderr[-2000:]
        modules |= modules_of(proc)
    return modules


def modules_of(proc: subprocess.CompletedProcess[str]) -> set[str]:
    """The modules a `python -X importtime` process imported."""
    return {ln.rsplit("|", 1)[1].strip() for ln in proc.stderr.splitlines() if ln.startswith("import time:")}


def engine_modules(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.startswith(ENGINE))


def test_ps_inspect_and_images_are_served_by_the_agent_and_print_what_they_print_without_one(
        tmp_path: Path, native_agent: AgentProc, busybox_image: str) -> None:
    a = native_agent
    (tmp_path / "m" / "web.yaml").write_text(doc("web", busybox_image, "echo started; sleep 3600").replace(
        "metadata: {name: web}", "metadata: {name: web, labels: {tier: front}}"))
    (tmp_path / "m" / "job.yaml").write_text(doc("job", busybox_image, "echo out; echo err >&2; exit 3",
                                                 restart="'no'"))
    a.start()
    wait_for("web running, job exited", lambda: {n: str(c.status) for n, c in state(a).items()}
             == {"web": "running", "job": "exited"})

    served = outputs(a, busybox_image)
    assert engine_modules(loaded(a, busybox_image)) == []       # the agent answered: no engine here
    assert [rc for rc, _, _ in served] == [0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 0, 0, 0,
                                           0, 0, 0, 0, 0, 0]
    assert "web" in served[0][1]
    assert "Exited (3)" in served[0][1]                         # job
    assert len(served[4][1].split()) == 1                       # the label filter went to the agent
    assert [d["Name"] for d in json.loads(served[5][1])] == ["/web", "/job"]
    assert served[6][2] == "error: No such container: nope\n"
    assert "test/busybox" in served[7][1]
    assert f"Status: Image is up to date for {busybox_image}\n" in served[10][1]
    assert served[11][1] == f"{busybox_image}\n"
    assert served[12][1] == "started\n"
    assert re.fullmatch(r"\S+ out\n", served[13][1])
    assert re.fullmatch(r"\S+ err\n", served[13][2])
    assert served[14][1:] == ("", "err\n")                      # the last line, on stderr
    assert served[15][2] == "error: No such container: nope\n"
    assert "web" in served[17][1]
    assert "job" not in served[17][1]                                       # running only
    assert [c["name"] for c in json.loads(served[19][1])] == ["web"]
    assert served[20][1].splitlines()[1:] == []                             # no container labelled so
    assert sorted(served[24][1].splitlines()) == ["job exited  none", "web running front none"]
    assert [json.loads(line)["Names"] for line in served[25][1].splitlines()] == ["web"]
    assert served[26][1] == "running /web\nexited /job\n"
    assert served[27][1].splitlines()[0].split() == ["REPOSITORY", "TAG", "DIGEST"]
    assert served[28][1].startswith("Client:\n")
    assert " Containers: 2\n  Running: 1\n" in served[28][1]
    assert served[29][1] == "2 1 1 1\n"                        # web runs, job exited; busybox

    status = reconcile(a, "status", importtime=True)           # the agent's status, with no http.client
    assert status.stdout.startswith(f"agent pid {a.pid} (native)")
    assert sorted(m for m in modules_of(status) if m.startswith(("ssl", "email", "http.client"))) == []

    # the start-up of a thin client (#21): no parser, no annotations' modules, no socket module
    # (its C core: no enums built, no selectors), no dataclasses
    for argv in (("ps", "-a"), ("ps", "-a", "-o", "json"), ("images",), ("inspect", "web"), ("status",)):
        proc = reconcile(a, *argv, importtime=True)
        assert proc.returncode == 0, proc.stderr[-2000:]
        thin = {"argparse", "typing", "socket", "selectors", "dataclasses", "shutil"} & modules_of(proc)
        assert sorted(thin) == [], argv
    # ps and images print the text the agent rendered (listing.py): no json (nor the re it
    # imports), no datetime, no error classes in the client (main.py imports them on an error only)
    for argv in (("ps", "-a"), ("ps", "-a", "-o", "json"), ("ps", "-q"), ("images",), ("images", "-o", "json")):
        proc = reconcile(a, *argv, importtime=True)
        assert proc.returncode == 0, proc.stderr[-2000:]
        rendered = {"json", "re", "datetime", "reconciler.errors", "reconciler.runtime.errors"} & modules_of(proc)
        assert sorted(rendered) == [], argv

    # the API: JSON rows without `print` (older clients), a print form it does not know refused
    status, rows = thin_api.request(str(a.socket), "GET", "/v1/containers")
    assert status == 200
    assert {r["name"] for r in rows} == {"web", "job"}
    assert thin_api.text(str(a.socket), "/v1/images?print=html")[0] == 400

    a.kill9()                                                   # its agent.json stays, nobody answers
    assert (a.root / "agent.json").exists()
    read_here = outputs(a, busybox_image)
    assert "_sqlite3" in engine_modules(loaded(a, busybox_image))  # it read the root itself
    assert read_here == served


def test_pull_missing_through_the_agent_asks_no_registry_and_prints_what_it_prints_without_one(
        native_agent: AgentProc, busybox_image: str, registry: Any) -> None:
    """`reconcile pull --pull=missing` of a present tag sends no request at all, also when the
    agent answers it (it predates the flag: it made its one HEAD); a plain re-pull still makes
    one HEAD; the agent refuses a policy it does not know; and what both print is what they
    print when the CLI reads the root itself."""
    from tests.helpers.fault_server import FaultProxy

    proxy = FaultProxy(registry.port).start()
    a = native_agent
    try:
        image = busybox_image.replace(registry.host, proxy.host)
        assert reconcile(a, "pull", "-q", image).returncode == 0       # present before the agent runs
        a.start()

        def pulled(*argv: str) -> tuple[tuple[int, str, str], list[str]]:
            """What `reconcile pull ARGV IMAGE` printed, and the requests the registry got."""
            before = len(proxy.requests())
            proc = reconcile(a, "pull", *argv, image)
            return (proc.returncode, proc.stdout, proc.stderr), [f"{r.method} {r.path}" for r in
                                                                   proxy.requests()[before:]]

        served_missing, asked = pulled("--pull=missing")
        assert asked == []
        assert served_missing[0] == 0, served_missing
        assert f"Status: Image is up to date for {image}\n" in served_missing[1]
        served_always, asked = pulled()
        assert asked == [f"HEAD /v2/{image.split('/', 1)[1].rsplit(':', 1)[0]}/manifests/latest"]
        assert served_always[0] == 0, served_always
        proc = reconcile(a, "pull", "--pull=missing", image, importtime=True)
        assert engine_modules(modules_of(proc)) == []                     # the agent answered it
        status, _ = thin_api.request(str(a.socket), "POST", "/v1/pull", {"ref": image, "pull": "never"})
        assert status == 400

        a.kill9()                                                   # its agent.json stays, nobody answers
        read_missing, asked = pulled("--pull=missing")
        assert asked == []
        read_always, asked = pulled()
        assert len(asked) == 1
        assert (read_missing, read_always) == (served_missing, served_always)
    finally:
        proxy.stop()


def test_commands_for_a_root_without_an_agent_never_ask_the_default_agent(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """`--root X` with no agent of its own (no X/agent.json): status answers from X's state DB
    and says no agent holds X, events and reconcile-now fail naming X, rollback applies X's own
    kept revision. The default socket (an agent there holds the default root) is not asked: it
    was, so with a host agent running these answered, or acted, for the host's root."""
    from reconciler.cli import _agentapi
    from reconciler.cli.main import main

    monkeypatch.delenv("RECONCILER_SOCKET", raising=False)
    root = tmp_path / "root"
    root.mkdir()
    args = SimpleNamespace(root=str(root), socket=None)
    assert _agentapi.socket_path(args) is None
    default = SimpleNamespace(root="/var/lib/reconciler", socket=None)
    assert _agentapi.socket_path(default) == "/run/reconciler/reconciler.sock"
    monkeypatch.setenv("RECONCILER_SOCKET", str(tmp_path / "named.sock"))
    assert _agentapi.socket_path(args) == str(tmp_path / "named.sock")     # named: asked
    monkeypatch.delenv("RECONCILER_SOCKET")

    capsys.readouterr()
    assert main(["status", "--root", str(root)]) == 1
    out = capsys.readouterr().out
    assert f"no agent is running (no agent holds {root}" in out
    assert "/run/reconciler" not in out
    for argv in (["events", "--root", str(root)], ["reconcile-now", "--root", str(root)]):
        assert main(argv) != 0
        err = capsys.readouterr().err
        assert f"no agent runs for the state root {root}" in err, err


def test_ps_size_through_the_agent_prints_what_it_prints_without_one(
        tmp_path: Path, native_agent: AgentProc, busybox_image: str) -> None:
    """`ps -s`, its JSON and a template's .Size: the agent measures the rows it serves (it had no
    -s, and .Size was N/A), and they print the same as when the CLI reads the root itself."""
    a = native_agent
    (tmp_path / "m" / "writer.yaml").write_text(doc("writer", busybox_image,
                                                    "head -c 100000 /dev/zero > /blob; sleep 3600"))
    (tmp_path / "m" / "job.yaml").write_text(doc("job", busybox_image, "head -c 5000 /dev/zero > /b; exit 3",
                                                 restart="'no'"))
    a.start()
    wait_for("writer running, job exited", lambda: {n: str(c.status) for n, c in state(a).items()}
             == {"writer": "running", "job": "exited"})
    wait_for("writer's file written", lambda: reconcile(a, "exec", "writer", "test", "-s", "/blob").returncode == 0)
    sized = (("ps", "-s"), ("ps", "-as"), ("ps", "-a", "-s", "-o", "json"), ("ps", "-s", "-o", "yaml"),
             ("ps", "-a", "--format", "{{.Names}} {{.Size}}"), ("ps", "--format", "table {{.Names}}\\t{{.Size}}"),
             ("ps", "-a", "--format", "json"))
    ages = re.compile(r"\b(\d+ seconds?|Less than a second|About a minute|\d+ minutes)\b")

    def printed() -> list[tuple[int, str, str]]:
        done = [reconcile(a, *argv) for argv in sized]
        return [(p.returncode, re.sub(r" {2,}", "  ", ages.sub("AGE", p.stdout)), p.stderr) for p in done]

    served = printed()
    assert [rc for rc, _, _ in served] == [0] * len(sized), served
    proc = reconcile(a, "ps", "-as", importtime=True)
    assert engine_modules(modules_of(proc)) == []                   # the agent answered (and measured)
    rows = {r["name"]: r for r in json.loads(served[2][1])}
    assert 100_000 <= rows["writer"]["size_rw"] < 104_096
    assert 5_000 <= rows["job"]["size_rw"] < 9_096
    assert rows["writer"]["size_root_fs"] - rows["writer"]["size_rw"] == rows["job"]["size_root_fs"] - \
        rows["job"]["size_rw"] > 0                                  # the image's size, the same
    assert served[0][1].splitlines()[0].split()[-2:] == ["NAMES", "SIZE"]
    assert "job" not in served[0][1]
    assert re.search(r"writer  100kB \(virtual [\d.]+MB\)\n", served[0][1])
    assert re.search(r"job  5kB \(virtual [\d.]+MB\)\n", served[1][1])
    assert re.fullmatch(r"job 5kB \(virtual [\d.]+MB\)\nwriter 100kB \(virtual [\d.]+MB\)",
                        "\n".join(sorted(served[4][1].splitlines())))
    assert [json.loads(line)["Size"] for line in served[6][1].splitlines()] == ["0B", "0B"]   # as docker's

    a.kill9()                                                   # its agent.json stays, nobody answers
    assert printed() == served
