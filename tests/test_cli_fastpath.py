"""The read-only commands' fast path (cli/fastpath.py, #21): `reconcile ps -a` and the other
everyday forms of ps, images, inspect, logs, status and version are parsed without argparse
into the namespace argparse makes, and every other form still goes to argparse."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.cli import fastpath
from reconciler.cli import main as climain

REPO = Path(__file__).resolve().parent.parent

EVERYDAY = [
    ["ps"], ["ps", "-a"], ["ps", "-aq"], ["ps", "-qa", "--no-trunc"], ["ps", "--all", "--quiet"],
    ["ps", "-a", "-o", "json"], ["ps", "--output", "yaml"], ["ps", "--output=table", "-a"],
    ["ps", "-s"], ["ps", "-as"], ["ps", "--size", "-o", "json"], ["ps", "-sa", "--format", "{{.Size}}"],
    ["images"], ["images", "-q", "--no-trunc"], ["images", "--digests", "-o", "json"], ["images", "-a"], ["images", "-aq"],
    ["inspect", "web"], ["inspect", "web", "job", "-o", "yaml"],
    ["ps", "--format", "{{.Names}}"], ["ps", "-a", "--format=table {{.ID}}\\t{{.Names}}"], ["images", "--format", "json"],
    ["inspect", "-f", "{{.State.Status}}", "web"], ["inspect", "--format", "json", "web", "job"],
    ["logs", "web"], ["logs", "-f", "web"], ["logs", "web", "-ft"], ["logs", "--timestamps", "--follow", "web"],
    ["status"], ["status", "-o", "json"], ["version"], ["version", "-o", "yaml"],
    ["pull", "registry:5000/app:1"], ["pull", "-q", "app"], ["pull", "app@sha256:" + "0" * 64, "--quiet"],
    ["pull", "--pull=missing", "app"], ["pull", "--pull", "always", "-q", "app"], ["pull", "app", "--pull=always"],
    ["build", "--tag=a:1", "--build-arg=K=V", "--file=D", "-t", "b", "."],
    ["build", "."], ["build", "-t", "app:1", "ctx"], ["build", "ctx", "-t", "a", "--tag", "b:2", "-q"],
    ["build", "-f", "x/Dockerfile", "--file", "y", "--build-arg", "K=V", "--build-arg", "K2", "--no-cache", "--pull",
     "--quiet", "ctx"],
    ["build", "--check", "--check-error", "."],
    ["run", "img"], ["run", "--rm", "img", "true"], ["run", "--rm", "--network", "none", "registry:5000/a:1", "true"],
    ["run", "-d", "--name", "web", "-p", "8080:80", "-p", "127.0.0.1:53:53/udp", "img"],
    ["run", "-it", "img", "sh"], ["run", "-dit", "--rm", "img"], ["run", "--name=web", "--network=n1", "--network", "n2",
                                                                  "img"],
    ["run", "-e", "A=1", "--env", "B", "-l", "k=v", "-v", "data:/data:ro", "--tmpfs", "/t:size=1m", "img", "a", "b"],
    ["run", "-m", "64m", "--cpus", "0.5", "--pids-limit", "10", "--restart", "on-failure:3", "img"],
    ["run", "--health-cmd", "true", "--health-interval", "5s", "--health-timeout=2s", "--health-retries", "2",
     "--health-start-period", "1s", "--health-start-interval", "100ms", "img"],
    ["run", "--stop-signal", "SIGINT", "--stop-timeout", "3", "--cap-add", "NET_ADMIN", "--cap-drop", "ALL",
     "--read-only", "-u", "1000:1000", "-w", "/srv", "-h", "box", "--entrypoint", "sh", "img", "-c", "echo --rm"],
    ["run", "img", "--rm", "-d"],           # after the image: the command's arguments, options or not
    # the engine options and --runtime, on every command that has them
    ["ps", "--root", "/x"], ["ps", "-a", "--root=/x", "--run-dir", "/r", "--name-prefix", "p", "--oci-runtime", "crun"],
    ["ps", "--runtime", "fake"], ["pull", "--runtime", "docker", "app"], ["run", "--root", "/x", "img"],
    ["images", "--runtime=docker", "--root", "/x"],
    # `--once DIR` (main rewrites it to `apply DIR`) and apply's options
    ["apply", "m"], ["apply", "--dry-run", "-o", "json", "m"], ["apply", "m/x.yaml"],
    ["apply", "m", "--root", "/r", "--run-dir", "/d", "--name-prefix", "p", "--runtime", "native"],
    ["apply", "--settle", "0", "--parallel", "8", "--host-label", "a=b", "--host-label=c=d", "--all-hosts",
     "--relabel", "--allow-empty", "--timeout", "90s", "--keep-revisions", "3", "--policy", "restricted",
     "--sops-age-key-file", "k", "--owner", "o", "m"],
    ["apply", "--settle=1m30s", "--runtime=swarm", "m", "--output", "yaml"],
    # compose's -f (repeatable), -p and --project-directory, the source left out with -f
    ["apply", "-f", "compose.yaml", "-f", "prod.yaml", "-p", "shop"], ["apply", "--file=c.yml", "--project-name=x"],
    ["apply", "-f", "deploy/c.yml", "--project-directory", "."],
    ["apply"], ["apply", "--root", "m"],     # no source, no -f: parsed alike, refused by apply (exit 2)
    # service names after the source, anywhere among the options (argparse's intermixed parse), and --no-deps
    ["apply", "a", "b"], ["apply", "m", "web", "worker"], ["apply", "m", "--no-deps", "web"],
    ["apply", "m", "--root", "/r", "web", "-o", "json", "worker"], ["apply", "-f", "c.yml", "web", "--no-deps"],
    ["apply", "--no-deps", "-f", "c.yml", "-p", "shop", "web"],
    # create: run's options but -d
    ["create", "img"], ["create", "--rm", "--name", "web", "-p", "8080:80", "-e", "A=1", "img", "sh", "-c", "x"],
    ["create", "-it", "--network", "none", "--root", "/x", "img"],
    # docker's forms of them (cli/aliases.py): the namespace argparse makes of `container ls ...`
    ["container", "ls"], ["container", "ls", "-aq"], ["container", "ps", "-a", "--no-trunc"],
    ["container", "list", "-o", "json", "--root", "/x"], ["container", "inspect", "web", "-f", "{{.Id}}"],
    ["container", "logs", "-f", "web"], ["container", "run", "--rm", "img", "true"],
    ["container", "create", "--name", "web", "img", "sleep", "1"], ["image", "ls", "-q"], ["image", "list"],
    ["image", "pull", "-q", "app"], ["image", "build", "-t", "a:1", "."],
]

# help, options with values the fast path does not take, and usage errors: argparse's
TO_ARGPARSE = [
    ["ps", "--help"], ["ps", "-h"], ["ps", "-f", "label=a=b"], ["ps", "-o"],
    ["ps", "-o", "bogus"], ["ps", "-ojson"], ["ps", "-ax"], ["ps", "web"], ["ps", "--"], ["ps", "--runtime", "bogus"],
    ["ps", "--oci-runtime", "kata"], ["ps", "--root"], ["ps", "--root=", "-a"], ["ps", "--ro", "/x"],
    ["inspect"], ["inspect", "-o", "table", "web"], ["logs"], ["logs", "a", "b"], ["logs", "--tail", "1", "web"],
    ["logs", "-o", "json", "web"], ["version", "--root", "/x"], ["--log-level", "debug", "ps"], ["-a", "ps"],
    ["rm", "web"], [], ["pull"], ["pull", "a", "b"], ["pull", "--pull=bogus", "app"], ["pull", "--pull", "x", "app"],
    ["pull", "--pull=", "app"], ["pull", "--pull"], ["pull", "app", "--pull"], ["pull", "-q=x", "app"],
    ["pull", "--platform", "linux/arm64", "app"], ["pull", "-o", "json", "app"],
    ["build"], ["build", "-t"], ["build", ".", "-t"], ["build", "-t", "-x", "."], ["build", "--tag=", "."],
    ["build", "-t=a", "."], ["build", "--no-cache=1", "."],
    ["build", "-tapp", "."], ["build", "--target", "s", "."], ["build", "a", "b"],
    ["build", "--secret", "id=a,src=b", "."], ["build", "-qt", "a", "."],
    ["run"], ["run", "--help"], ["run", "--rm"], ["run", "-p", "bogus", "img"], ["run", "-m", "lots", "img"],
    ["run", "--restart", "sometimes", "img"], ["run", "--pids-limit", "x", "img"], ["run", "--", "img"],
    ["run", "img", "--", "true"], ["run", "--det", "img"], ["run", "-e=A", "img"],
    ["run", "--rm=1", "img"], ["run", "--health-interval", "soon", "img"], ["run", "-e", "-x", "img"],
    ["apply", "-f"], ["apply", "-f", "-"], ["apply", "-", "--root", "/r"], ["apply", "--help"], ["apply", "--settle", "soon", "m"],
    ["apply", "--parallel", "x", "m"], ["apply", "--runtime", "bogus", "m"],
    ["apply", "-o", "wide", "m"], ["apply", "--dry", "m"], ["apply", "--socket", "s", "m"],
    ["create"], ["create", "-d", "img"], ["create", "--help"], ["create", "--detach", "img"],
    ["container"], ["container", "ls", "-f", "label=a=b"], ["container", "start", "web"], ["container", "frob"],
    ["container", "export", "web"], ["container", "--root", "/x", "ls"], ["image"], ["image", "history", "app"],
    ["image", "ls", "--help"], ["image", "rm", "app"],
]


@pytest.fixture(params=["defaults", "environment"])
def environment(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The options' defaults as they are, or as the RECONCILER_* variables set them."""
    for name in ("RECONCILER_ROOT", "RECONCILER_RUN_DIR", "RECONCILER_PREFIX", "RECONCILER_OCI_RUNTIME",
                 "RECONCILER_RUNTIME"):
        monkeypatch.delenv(name, raising=False)
    if request.param == "environment":
        monkeypatch.setenv("RECONCILER_ROOT", str(tmp_path / "root"))
        monkeypatch.setenv("RECONCILER_RUN_DIR", str(tmp_path / "run"))
        monkeypatch.setenv("RECONCILER_PREFIX", "rfp")
        monkeypatch.setenv("RECONCILER_OCI_RUNTIME", "crun")
        monkeypatch.setenv("RECONCILER_RUNTIME", "fake")


@pytest.mark.parametrize("argv", EVERYDAY, ids=" ".join)
def test_the_fast_path_makes_the_namespace_argparse_makes(environment: None, argv: list[str]) -> None:
    fast = fastpath.parse(argv)
    assert fast is not None, f"{argv} should take the fast path"
    parsed = climain._parse(list(argv))
    assert not isinstance(parsed, int)
    assert vars(fast) == vars(parsed)


@pytest.mark.parametrize("argv", TO_ARGPARSE, ids=lambda a: " ".join(a) or "(nothing)")
def test_every_other_form_goes_to_argparse(argv: list[str]) -> None:
    assert fastpath.parse(argv) is None


def test_the_fast_path_knows_only_commands_the_parser_has() -> None:
    assert set(fastpath.COMMANDS) <= set(climain.COMMANDS)


@pytest.mark.parametrize("words", [["ps"], ["container", "ls"]], ids=" ".join)
@pytest.mark.parametrize("run_dir_named", [True, False], ids=["run-dir-named", "run-dir-derived"])
def test_ps_starts_without_argparse_and_creates_nothing(tmp_path: Path, run_dir_named: bool, words: list[str]) -> None:
    """`python -X importtime -m reconciler ps -a` on a root that does not exist yet: it prints
    the empty table, loads no argparse (nor gettext and locale, which it asks for) and no engine
    code, even to find the run dir and name prefix the root would get, and makes no root; so
    does docker's `container ls -a`."""
    root, run = tmp_path / "root", tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")}
    env.update({"RECONCILER_ROOT": str(root), "PYTHONPATH": str(REPO)})
    if run_dir_named:
        env.update({"RECONCILER_RUN_DIR": str(run), "RECONCILER_PREFIX": "rfp"})
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "reconciler", *words, "-a"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, check=False, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
    modules = {ln.rsplit("|", 1)[1].strip() for ln in proc.stderr.splitlines() if ln.startswith("import time:")}
    assert "reconciler.cli.fastpath" in modules                 # the measurement saw the command
    # (not pathlib: a development venv's editable finder imports it before any of ours)
    heavy = {"argparse", "gettext", "locale", "shutil", "sqlite3", "dataclasses", "typing",
             "reconciler.runtime.native.config"}
    assert sorted(modules & heavy) == []
    assert not root.exists()
    assert not run.exists()


@pytest.mark.parametrize("command", fastpath.COMMANDS)
def test_each_fast_command_describes_its_flags_once(command: str) -> None:
    """One home (#21): a fast-path command's flags are its module's SPEC, which its parser is
    made of too: the parser's flags that take no value are exactly the spec's."""
    import argparse
    import importlib

    spec = importlib.import_module(f"reconciler.cli.cmd_{command}").SPEC
    parser = climain.build_parser(command)
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    flags = {o: a.dest for a in sub._actions if isinstance(a, argparse._StoreTrueAction) for o in a.option_strings
             if o not in ("--log-json",)}
    assert flags == spec.dests()
    # and the options with a value it takes (its own, the engine options, --runtime): the same
    # dest, the same choices
    options = {o: (a.dest, tuple(a.choices or ())) for a in sub._actions for o in a.option_strings}
    assert {o: options.get(o) for o in spec.taken()} == {
        o: (dest, spec.choices.get(dest, ())) for o, dest in spec.taken().items()}
