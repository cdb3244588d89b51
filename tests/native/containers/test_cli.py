"""The docker-like container commands, run as a user runs them: `reconcile run/ps/logs/exec/...`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from reconciler.runtime.native.backend import NativeRuntime
from reconciler.runtime.native.config import NativeConfig
from tests.runtime.conftest import cleanup, leftovers, native_config

pytestmark = [pytest.mark.root, pytest.mark.registry]

REPO = Path(__file__).resolve().parents[3]
Reconcile = Callable[..., subprocess.CompletedProcess[str]]


def native_config_of(tmp: Path) -> NativeConfig:
    """The config the `cli` fixture gave its engine (its prefix is in the file it wrote)."""
    return NativeConfig(root=tmp / "root", run_dir=tmp / "run", name_prefix=(tmp / "prefix").read_text())


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[tuple[Reconcile, Path]]:
    config = native_config(tmp_path)
    (tmp_path / "prefix").write_text(config.name_prefix)
    env = {**os.environ, "RECONCILER_ROOT": str(config.root), "RECONCILER_RUN_DIR": str(config.run_dir),
           "RECONCILER_PREFIX": config.name_prefix}

    def reconcile(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([sys.executable, "-m", "reconciler", *args], cwd=REPO, env=env,
                              capture_output=True, text=True, check=False, timeout=120)
        if check and proc.returncode != 0:
            raise AssertionError(f"reconcile {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
        return proc

    try:
        yield reconcile, tmp_path
    finally:
        rt = NativeRuntime(config)
        cleanup(rt)
        left = leftovers(config)
        rt.close()
        assert left == [], left


def test_run_ps_logs_exec_inspect_stop_rm(cli: tuple[Reconcile, Path], busybox_image: str) -> None:
    reconcile, _ = cli
    fg = reconcile("run", "--rm", busybox_image, "sh", "-c", "echo out; echo err >&2; exit 3", check=False)
    assert fg.returncode == 3
    assert fg.stdout == "out\n"
    assert fg.stderr.endswith("err\n")

    cid = reconcile("run", "-d", "--name", "web", "-e", "A=b", "-l", "tier=front", busybox_image,
                    "sh", "-c", "echo started; sleep 1000").stdout.strip()
    assert len(cid) == 64
    reconcile("run", "-d", "--name", "done", busybox_image, "sh", "-c", "exit 5")

    table = reconcile("ps").stdout.splitlines()
    assert table[0].split() == ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
    assert len(table) == 2
    assert table[1].startswith(cid[:12])
    assert " Up " in table[1]
    assert table[1].endswith("web")
    rows = json.loads(reconcile("ps", "-a", "--output", "json").stdout)
    by_name = {r["name"]: r for r in rows}
    assert by_name["web"]["status"] == "running"
    assert by_name["done"]["status"] == "exited"
    assert by_name["done"]["exit_code"] == 5
    assert by_name["done"]["status_text"].startswith("Exited (5) ")
    assert reconcile("ps", "-aq", "--filter", "label=tier=front").stdout.split() == [cid[:12]]

    assert reconcile("logs", "web").stdout == "started\n"
    assert reconcile("logs", "--tail", "0", "web").stdout == ""
    ex = reconcile("exec", "web", "sh", "-c", "echo $A; exit 4", check=False)
    assert ex.returncode == 4
    assert ex.stdout == "b\n"

    doc = json.loads(reconcile("inspect", "web").stdout)[0]
    assert doc["Id"] == cid
    assert doc["Name"] == "/web"
    assert doc["State"]["Running"] is True
    assert doc["Config"]["Labels"] == {"tier": "front"}
    assert doc["Args"] == ["-c", "echo started; sleep 1000"]

    assert reconcile("stop", "-t", "0", "web").stdout.strip() == "web"
    doc = json.loads(reconcile("inspect", cid[:12]).stdout)[0]
    assert doc["State"]["ExitCode"] == 137
    rm = reconcile("rm", "web", "done", "nosuch", check=False)
    assert rm.returncode == 1
    assert "nosuch" in rm.stderr
    assert reconcile("ps", "-aq").stdout == ""


def test_run_and_logs_print_what_the_container_wrote_byte_for_byte(cli: tuple[Reconcile, Path],
                                                                    busybox_image: str) -> None:
    """`run IMG cat FILE > out` is FILE: a binary whose last bytes end without a newline, and
    lines longer than conmon's 8 KiB buffer, come out as written, no newline added (docker's
    output is the same), by `run` and by `logs` after it."""
    reconcile, tmp = cli
    env = {**os.environ, "RECONCILER_ROOT": str(tmp / "root"), "RECONCILER_RUN_DIR": str(tmp / "run"),
           "RECONCILER_PREFIX": (tmp / "prefix").read_text()}
    busybox = Path("/bin/busybox").read_bytes()
    assert not busybox.endswith(b"\n")

    def raw(*args: str) -> bytes:
        return subprocess.run([sys.executable, "-m", "reconciler", *args], cwd=REPO, env=env, capture_output=True,
                              check=True, timeout=120).stdout

    assert raw("run", "--name", "bin", busybox_image, "cat", "/bin/busybox") == busybox
    assert raw("logs", "bin") == busybox
    assert raw("run", "--rm", busybox_image, "sh", "-c", "echo -n x; seq 3") == b"x1\n2\n3\n"
    reconcile("rm", "bin")


def test_run_rm_mounts_a_file_system_without_syncs(cli: tuple[Reconcile, Path], busybox_image: str) -> None:
    """#21: the overlay of a container `run --rm` throws away is mounted volatile (overlayfs skips
    every sync of its upper dir, its unmount's included, as podman does for --rm); a container
    that stays keeps a synced one. Both leave nothing behind (the fixture checks)."""
    reconcile, _ = cli
    root_line = "grep ' / / ' /proc/self/mountinfo"
    gone = reconcile("run", "--rm", busybox_image, "sh", "-c", root_line).stdout
    assert " - overlay " in gone
    assert "volatile" in gone
    kept = reconcile("run", "--name", "kept", busybox_image, "sh", "-c", root_line).stdout
    assert " - overlay " in kept
    assert "volatile" not in kept
    reconcile("rm", "kept")
    assert reconcile("ps", "-aq").stdout == ""


def test_run_with_volume_and_limits(cli: tuple[Reconcile, Path], busybox_image: str) -> None:
    reconcile, tmp = cli
    host = tmp / "h"
    host.mkdir()
    (host / "f").write_text("bound")
    out = reconcile("run", "--rm", "-v", f"{host}:/h:ro", "-v", "data:/data", "--tmpfs", "/scratch",
                    "-m", "64m", "--pids-limit", "30", "-u", "app", "-w", "/tmp", busybox_image,
                    "sh", "-c", "cat /h/f; echo; id -u; pwd; cat /sys/fs/cgroup/pids/pids.max").stdout
    assert out.splitlines() == ["bound", "1000", "/tmp", "30"]
    bad = reconcile("run", "--rm", busybox_image, "/nonexistent", check=False)
    assert bad.returncode == 127                # not found, as docker run says it
    assert "/nonexistent" in bad.stderr


# What a read-only command must not load: libraries it does not use (each costs 10-150 ms of
# start-up), and the native engine's lifecycle, whose modules bring the bundle (seccomp, ctypes),
# mounts, networking (pyroute2), health and restart supervision.
HEAVY = ("httpx", "jsonschema", "pyroute2", "asyncio", "ssl", "structlog")
LIFECYCLE = tuple(f"reconciler.runtime.native.{m}" for m in (
    "containers.bundle", "containers.containers", "containers.health", "containers.restart",
    "network.network", "network.netlink", "containers.mounts", "containers.seccomp", "images.images"))


def imported(argv: list[str], env: dict[str, str]) -> set[str]:
    """The modules `python -X importtime -m reconciler ARGV` imports (the command must succeed)."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "reconciler", *argv], cwd=REPO, env=env,
                          capture_output=True, text=True, check=False, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return {line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}


# the everyday forms of the read-only commands are parsed without it (cli/fastpath.py): ~15 ms
PARSER = ("argparse",)


@pytest.mark.parametrize(("command", "forbidden"), [
    (["ps", "-a"], HEAVY + LIFECYCLE + PARSER), (["ps", "-a", "-o", "json"], HEAVY + LIFECYCLE + PARSER),
    # sizes: the trees walked and the images' rows read, with no image store (containers/sizes.py)
    (["ps", "-as"], HEAVY + LIFECYCLE + PARSER), (["ps", "-a", "--format", "{{.Size}}"], HEAVY + LIFECYCLE + PARSER),
    (["inspect", "done"], HEAVY + LIFECYCLE + PARSER), (["logs", "done"], HEAVY + LIFECYCLE + PARSER),
    (["images"], HEAVY + PARSER), (["volume", "ls"], HEAVY),
    # the engine as docker info shows it: the rows ps and images read, the programs' versions
    (["info"], HEAVY + LIFECYCLE), (["system", "info", "-f", "{{.Containers}}"], HEAVY + LIFECYCLE),
    (["--version"], (*HEAVY, *LIFECYCLE, *PARSER, "sqlite3")), (["version"], (*HEAVY, *PARSER, "sqlite3")),
    (["status"], (*HEAVY, *PARSER, "http.client", "email")),            # no agent: what the state DB says
    # a re-pull: one plain HEAD (no registry client, no TLS), nothing logged, no container code,
    # neither the image store nor the engine's dataclasses (images.presence answers)
    (["pull", "-q", "IMAGE"], (*HEAVY, *LIFECYCLE, "reconciler.runtime.base", "reconciler.registry_client.client",
                               "reconciler.runtime.native.images.snapshots", "encodings.idna")),
])
def test_read_only_commands_do_not_import_heavy_libraries(cli: tuple[Reconcile, Path], busybox_image: str,
                                                          command: list[str], forbidden: tuple[str, ...]) -> None:
    """The CI check of the start-up budget (#21): on a root that holds containers (one running,
    one exited), an image and a volume, `python -X importtime -m reconciler ps` and the other
    read-only commands import nothing on the deny-list, nor does a pull of the image present."""
    reconcile, tmp = cli
    reconcile("run", "-d", "--name", "up", "-v", "data:/data", busybox_image, "sleep", "1000")
    reconcile("run", "--name", "done", busybox_image, "echo", "hi")
    env = {**os.environ, "RECONCILER_ROOT": str(tmp / "root"), "RECONCILER_RUN_DIR": str(tmp / "run"),
           "RECONCILER_PREFIX": (tmp / "prefix").read_text()}
    modules = imported([busybox_image if a == "IMAGE" else a for a in command], env)
    assert "reconciler.cli.main" in modules                 # the measurement saw the command
    assert sorted(m for m in modules if m.split(".")[0] in forbidden or m in forbidden) == []


def test_run_of_a_present_image_imports_only_what_it_uses(cli: tuple[Reconcile, Path], busybox_image: str) -> None:
    """The start-up budget of `run --rm IMG sh -c 'echo hi'` (#21): an image already present, no network, so
    nothing is logged (no logging), no random name needs `secrets` (random, hmac), nothing is
    hashed (hashlib: OpenSSL), no socket is opened (no agent holds the root), the seccomp profile
    is read without importlib.resources (zipfile...), no flag or option needs the manifest
    language's parsers (reconciler.spec), `dataclasses` is not given `inspect` (and its `ast`),
    and nothing heavy is loaded; of the engine, no network
    part (network "none": not even the hosts-file helpers), no image collector, and none of the
    value types of container states, execs, logs, networks and volumes (runtime/basetypes.py)."""
    reconcile, tmp = cli
    reconcile("pull", "-q", busybox_image)
    env = {**os.environ, "RECONCILER_ROOT": str(tmp / "root"), "RECONCILER_RUN_DIR": str(tmp / "run"),
           "RECONCILER_PREFIX": (tmp / "prefix").read_text()}
    modules = imported(["run", "--rm", "--network", "none", busybox_image, "sh", "-c", "echo hi"], env)
    assert "reconciler.runtime.native.containers.conmon" in modules     # the measurement saw a run
    forbidden = (*HEAVY, "logging", "secrets", "random", "hmac", "hashlib", "importlib.resources", "zipfile",
                 "socket", "platform", "reconciler.spec", "reconciler.runtime.native.network",
                 "inspect", "ast", "dis", "tokenize",        # dataclasses' (reconciler/_dataclass.py)
                 "reconciler.runtime.native.images.gc", "reconciler.runtime.basetypes")
    assert sorted(m for m in modules if m.split(".")[0] in forbidden or m in forbidden
                  or m.startswith("reconciler.runtime.native.network")) == []


def test_run_keeps_the_code_of_its_dataclasses_for_the_next_run(cli: tuple[Reconcile, Path], busybox_image: str) -> None:
    """`run` ends its process without the interpreter's teardown (main._end_now), but with its
    exit functions: the dataclass code it compiled is kept beside its bytecode (_dataclass.py),
    so the next `run` compiles none (#21: ~12 ms of each), as after a command that exits normally."""
    reconcile, tmp = cli
    reconcile("pull", "-q", busybox_image)
    cache = tmp / "pycache"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update({"RECONCILER_ROOT": str(tmp / "root"), "RECONCILER_RUN_DIR": str(tmp / "run"),
                "RECONCILER_PREFIX": (tmp / "prefix").read_text(), "PYTHONPYCACHEPREFIX": str(cache)})
    for _ in range(2):
        proc = subprocess.run([sys.executable, "-m", "reconciler", "run", "--rm", "--network", "none", busybox_image,
                               "echo", "hi"], cwd=REPO, env=env, capture_output=True, text=True, check=False, timeout=60)
        assert (proc.returncode, proc.stdout) == (0, "hi\n"), proc.stderr[-2000:]
        kept = list(cache.rglob("dataclass-code.*.marshal"))
        assert len(kept) == 1
    probe = ("import reconciler._dataclass as d, reconciler.runtime.native.backend, reconciler.runtime.parts\n"
             "print(d.stats()['compiled'], d.stats()['used'])")
    compiled, used = map(int, subprocess.run([sys.executable, "-c", probe], cwd=REPO, env=env, capture_output=True,
                                             text=True, check=True, timeout=60).stdout.split())
    assert used > 50
    assert compiled == 0                    # every class the engine makes, taken from what `run` kept


# what a command that opens the native engine loads (run, a pass's crash check and observe)
ENGINE_MODULES = ("reconciler.runtime.native.backend", "reconciler.runtime.native.containers.recovery",
                  "reconciler.runtime.native.images.images", "reconciler.runtime.opening")


def test_loading_the_engine_compiles_no_regular_expression_of_its_own() -> None:
    """The engine's patterns (container and volume names, `--since` durations) are compiled at
    their first use, by `re`'s own cache, not by every command that loads the engine (#21): in a
    fresh interpreter, importing its modules calls `re.compile` from none of reconciler.runtime's."""
    probe = ("import re, sys\n"
             "callers = []\n"
             "compile_ = re.compile\n"
             "def counted(pattern, flags=0):\n"
             "    callers.append(sys._getframe(1).f_globals.get('__name__', ''))\n"
             "    return compile_(pattern, flags)\n"
             "re.compile = counted\n"
             f"for m in {ENGINE_MODULES!r}:\n"
             "    __import__(m)\n"
             "print(sorted({c for c in callers if c.startswith('reconciler.runtime')}))\n"
             "print(len(callers))\n")
    proc = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True,
                          timeout=60)
    ours, seen = proc.stdout.splitlines()
    assert int(seen) > 0                                # the probe saw compiles (the stdlib's)
    assert ours == "[]"


def test_a_no_op_pass_without_networks_does_not_import_pyroute2(cli: tuple[Reconcile, Path],
                                                                busybox_image: str) -> None:
    """The start-up budget of a pass (#21): when no manifest has a network, a nothing-to-do
    `--once` never loads the netlink module (pyroute2, ~120 ms), yet it converged the container."""
    reconcile, tmp = cli
    manifests = tmp / "manifests"
    manifests.mkdir()
    (manifests / "box.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: Container\nmetadata: {name: box}\n"
        f"spec:\n  image: {busybox_image}\n  command: [sleep, '3600']\n  networks: [none]\n")
    config = native_config_of(tmp)
    once = ["--once", str(manifests), "--root", str(config.root), "--run-dir", str(config.run_dir),
            "--name-prefix", config.name_prefix, "--runtime", "native"]
    reconcile(*once)
    assert "Up " in reconcile("ps").stdout
    modules = imported(once, {**os.environ})
    assert "reconciler.execution.passes" in modules            # the measurement saw a pass
    assert sorted(m for m in modules if m.split(".")[0] == "pyroute2" or m.endswith(".netlink")) == []


def test_ps_and_inspect_show_health(cli: tuple[Reconcile, Path], busybox_image: str) -> None:
    reconcile, tmp = cli
    reconcile("run", "-d", "--name", "hc", "--health-cmd", "true", "--health-interval", "1s", busybox_image,
              "sleep", "1000")
    assert "(health: starting)" in reconcile("ps").stdout
    from reconciler.runtime.native.containers import health

    rt = NativeRuntime(native_config_of(tmp))
    try:
        assert health.HealthChecker(rt.containers).probe("hc") == "healthy"
    finally:
        rt.close()
    assert "(healthy)" in reconcile("ps").stdout
    doc = json.loads(reconcile("inspect", "hc").stdout)[0]
    assert doc["State"]["Health"]["Status"] == "healthy"
    assert doc["State"]["Health"]["Log"][0]["ExitCode"] == 0
    assert doc["Config"]["Healthcheck"]["Test"] == ["CMD-SHELL", "true"]


def test_run_interactive_and_tty(cli: tuple[Reconcile, Path], busybox_image: str) -> None:
    import fcntl
    import pty
    import select
    import struct
    import termios
    import time

    _, tmp = cli
    env = {**os.environ, "RECONCILER_ROOT": str(tmp / "root"), "RECONCILER_RUN_DIR": str(tmp / "run"),
           "RECONCILER_PREFIX": (tmp / "prefix").read_text()}
    piped = subprocess.run([sys.executable, "-m", "reconciler", "run", "--rm", "-i", busybox_image,
                            "sh", "-c", "cat; echo err >&2; exit 4"], input="hello\nworld\n", cwd=REPO, env=env,
                           capture_output=True, text=True, check=False, timeout=60)
    assert piped.returncode == 4
    assert piped.stdout == "hello\nworld\n"
    assert piped.stderr.endswith("err\n")

    big = subprocess.run([sys.executable, "-m", "reconciler", "run", "--rm", "-i", busybox_image, "wc", "-c"],
                         input="x" * 500_000, cwd=REPO, env=env, capture_output=True, text=True, check=False,
                         timeout=60)
    assert big.stdout.strip() == "500000", big.stderr      # whole: conmon reads 32 KiB messages

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "reconciler", "run", "--rm", "-it", busybox_image,
                             "sh", "-c", "echo ready; read line; echo got-$line; stty size; tty; exit 3"],
                            stdin=slave, stdout=slave, stderr=slave, cwd=REPO, env=env, start_new_session=True)
    os.close(slave)
    out = b""
    typed = False
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1)
            if not ready:
                continue
            try:
                chunk = os.read(master, 4096)
            except OSError:             # EIO: the CLI exited and closed the terminal
                break
            if not chunk:
                break
            out += chunk
            if not typed and b"ready" in out:
                os.write(master, b"typed\r")
                typed = True
        assert proc.wait(timeout=30) == 3
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = out.decode(errors="replace")
    assert "got-typed" in text
    assert "30 100" in text
    assert "/dev/pts/0" in text


def _exit_marks(tmp: Path) -> tuple[dict[str, str], Path]:
    """The environment of a `reconcile` whose interpreter marks, in the file returned: its exit
    functions running (`exit collector=<on?>`), each collector pass once reconciler's collector
    module is loaded (`collection`), and its teardown (`teardown`: a module's object finalized)."""
    hooks = tmp / "hooks"
    hooks.mkdir()
    marks = tmp / "marks"
    (hooks / "sitecustomize.py").write_text(
        "import atexit, gc, sys\n"
        f"def mark(text, open=open, path={str(marks)!r}):\n"
        "    open(path, 'a').write(text + '\\n')\n"
        "atexit.register(lambda: (gc.callbacks.clear(), mark(f'exit collector={gc.isenabled()}')))\n"
        "gc.callbacks.append(lambda phase, info: phase == 'start' and 'reconciler.cli.collector' in sys.modules\n"
        "                    and mark('collection'))   # (cleared at exit: it holds this module)\n"
        "class _Finalized:\n"
        f"    def __del__(self, open=open, path={str(marks)!r}):\n"
        "        open(path, 'a').write('teardown\\n')\n"
        "_kept = _Finalized()\n")
    env = {**os.environ, "PYTHONPATH": str(hooks), "RECONCILER_ROOT": str(tmp / "root"),
           "RECONCILER_RUN_DIR": str(tmp / "run"), "RECONCILER_PREFIX": (tmp / "prefix").read_text()}
    return env, marks


def _ends(marks: Path) -> str:
    """How the marked processes ended (their collector passes left out)."""
    return marks.read_text().replace("collection\n", "")


def test_run_closes_its_database_then_ends_without_the_interpreters_teardown(
        cli: tuple[Reconcile, Path], busybox_image: str) -> None:
    """#21: `run`, a process of its own, closes its state DB itself (the WAL checkpointed into
    the file, as a close at exit does) and then ends at once, without the interpreter's teardown
    (~20 ms of CPU freeing the engine's objects): a module's object is never finalized, while
    the exit functions still run (logging's flush, the dataclass code kept: `atexit`), and what
    it printed and its exit code are all there."""
    reconcile, tmp = cli
    env, marks = _exit_marks(tmp)

    def hooked(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "reconciler", *argv], cwd=REPO, env=env,
                              capture_output=True, text=True, check=False, timeout=120)

    assert hooked("pull", "-q", busybox_image).returncode == 0
    assert hooked("version").returncode == 0
    assert _ends(marks) == "exit collector=True\nteardown\n" * 2   # the hooks work: other commands end as before
    marks.unlink()

    done = hooked("run", "--rm", "--network", "none", busybox_image, "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (done.returncode, done.stdout, done.stderr) == (3, "out\n", "err\n")
    detached = hooked("run", "-d", "--name", "bg", "--network", "none", busybox_image, "sleep", "3600")
    assert detached.returncode == 0
    assert len(detached.stdout.strip()) == 64
    assert not (tmp / "root" / "state.db-wal").exists()       # closed: its WAL checkpointed and removed
    assert _ends(marks) == "exit collector=True\n" * 2     # neither run tore the interpreter down
    reconcile("rm", "-f", "bg")


def test_the_read_only_listings_collect_nothing_and_end_without_the_teardown(
        cli: tuple[Reconcile, Path], busybox_image: str) -> None:
    """#21: `ps`, `images` and `inspect` in a process of their own (main.READ_ONLY) keep the
    cyclic collector off (what they allocate lives to their end) and end without the
    interpreter's teardown, still running the exit functions; what they print is all there. A
    command that writes (`pull`) ends as before, collector on."""
    reconcile, tmp = cli
    reconcile("pull", "-q", busybox_image)
    reconcile("run", "--name", "listed", "--network", "none", busybox_image, "true")
    env, marks = _exit_marks(tmp)

    def hooked(*argv: str) -> str:
        marks.unlink(missing_ok=True)
        proc = subprocess.run([sys.executable, "-m", "reconciler", *argv], cwd=REPO, env=env,
                              capture_output=True, text=True, check=False, timeout=120)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    assert [ln.split()[-1] for ln in hooked("ps", "-a").splitlines()] == ["NAMES", "listed"]
    assert marks.read_text() == "exit collector=False\n"
    assert busybox_image.rsplit(":", 1)[0] in hooked("images")
    assert marks.read_text() == "exit collector=False\n"
    assert json.loads(hooked("inspect", "listed"))[0]["Name"] == "/listed"
    assert marks.read_text() == "exit collector=False\n"
    hooked("pull", "-q", busybox_image)
    assert marks.read_text().endswith("exit collector=True\nteardown\n")

    # a one-shot pass closes its state DB (its WAL checkpointed and removed) and ends so too;
    # what it printed is all there
    m = tmp / "m"
    m.mkdir()
    (m / "app.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: Container\nmetadata: {name: once}\n"
        f"spec: {{image: {busybox_image!r}, command: [sleep, '3600'], networks: [none]}}\n")
    out = hooked("--once", str(m), "--settle", "0")
    assert "container:once" in out, out
    assert "converged" in out, out
    # (the collector is on again from the pass's first action: collections from there on)
    assert _ends(marks) == "exit collector=True\n"
    assert not (tmp / "root" / "state.db-wal").exists()
    out = hooked("--once", str(m))                      # nothing to do
    assert "converged" in out, out
    assert _ends(marks) == "exit collector=True\n"
    reconcile("rm", "-f", "once")


def test_run_makes_no_garbage_collection_while_it_loads_the_engine_and_sets_the_container_up(
        cli: tuple[Reconcile, Path], busybox_image: str) -> None:
    """#21: the collector is off from the start of `run` until its container started (the
    engine's imports and the set-up make no cycles worth a pass; ~8 ms of CPU), and on again for
    a run in the foreground, which may print for hours."""
    reconcile, tmp = cli
    reconcile("pull", "-q", busybox_image)
    hooks = tmp / "hooks"
    hooks.mkdir()
    passes = tmp / "passes"
    (hooks / "sitecustomize.py").write_text(
        "import gc, sys\n"
        "def seen(phase, info):\n"
        "    if phase == 'start' and 'reconciler.runtime.native.backend' in sys.modules:\n"
        f"        open({str(passes)!r}, 'a').write('pass\\n')\n"
        "gc.callbacks.append(seen)\n")
    env = {**os.environ, "PYTHONPATH": str(hooks), "RECONCILER_ROOT": str(tmp / "root"),
           "RECONCILER_RUN_DIR": str(tmp / "run"), "RECONCILER_PREFIX": (tmp / "prefix").read_text()}
    detached = subprocess.run([sys.executable, "-m", "reconciler", "run", "-d", "--name", "bg", "--network", "none",
                               busybox_image, "sleep", "3600"], cwd=REPO, env=env, capture_output=True, text=True,
                              check=False, timeout=120)
    assert detached.returncode == 0, detached.stderr
    assert not passes.exists()                  # no pass once the engine was loaded
    reconcile("rm", "-f", "bg")


def test_containers_made_in_one_pass_name_each_other_in_their_hosts_files(
        cli: tuple[Reconcile, Path], busybox_image: str) -> None:
    """A pass attaches its containers in a batch (NetworkManager.batch): the peers' hosts files
    are written once a second and at the pass's end, not at each attach. When the pass has
    ended, every container's /etc/hosts names every other one, and no mark of waiting names is
    left in the run dir."""
    from tests.helpers import host, subnets

    reconcile, tmp = cli
    manifests = tmp / "manifests"
    manifests.mkdir()
    config = native_config_of(tmp)
    block = subnets.lease_block()
    try:
        (manifests / "lan.yaml").write_text(
            "apiVersion: reconciler/v1\nkind: Network\nmetadata: {name: lan}\n"
            f"spec: {{subnet: '{next(block.subnets(new_prefix=24))}'}}\n")
        names = [f"box{i}" for i in range(5)]
        for name in names:
            (manifests / f"{name}.yaml").write_text(
                f"apiVersion: reconciler/v1\nkind: Container\nmetadata: {{name: {name}}}\n"
                f"spec:\n  image: {busybox_image}\n  command: [sleep, '3600']\n  networks: [lan]\n"
                "  stopTimeout: 1s\n")
        reconcile("--once", str(manifests), "--root", str(config.root), "--run-dir", str(config.run_dir),
                  "--name-prefix", config.name_prefix, "--runtime", "native", "--settle", "0")
        for name in names:
            hosts = reconcile("exec", name, "cat", "/etc/hosts").stdout
            named = {n for line in hosts.splitlines() for n in line.split()[1:]}
            assert named >= set(names), (name, hosts)
        stale_dir = config.net_stale_dir
        assert not stale_dir.is_dir() or os.listdir(stale_dir) == []
    finally:
        # the fixture's cleanup removes containers only: the network (bridge, nft table, DOCKER-USER
        # accepts) goes here, before its subnet is given back
        host.force_remove_all(config)
        subnets.release(block)


def _names(reconcile: Reconcile) -> dict[str, str]:
    """Container name -> status, as `ps -a -o json` lists them."""
    return {c["name"]: c["status"] for c in json.loads(reconcile("ps", "-a", "-o", "json").stdout)}


def _until(what: str, check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting: {what}"
        time.sleep(0.2)


def test_a_detached_run_rm_goes_at_its_exit_with_no_engine_running(cli: tuple[Reconcile, Path],
                                                                   busybox_image: str) -> None:
    """`run --rm -d`, as docker's: the container is removed when it exits, though no process of
    the engine runs by then (conmon runs autoremove.py), and when it is stopped; one without
    --rm stays, exited; while a process supervises (its restart manager removes them) the exit
    command leaves it to that process."""
    from reconciler.runtime.native.containers import autoremove

    reconcile, tmp = cli
    config = native_config_of(tmp)
    brief = reconcile("run", "--rm", "-d", "--name", "brief", busybox_image, "sleep", "1").stdout.strip()
    reconcile("run", "-d", "--name", "kept", busybox_image, "true")
    long = reconcile("run", "--rm", "-d", "--name", "long", busybox_image, "sleep", "300").stdout.strip()
    _until("brief removed at its exit", lambda: "brief" not in _names(reconcile))
    assert not (config.root / "containers" / brief).exists()
    reconcile("stop", "-t", "1", "long")
    _until("long removed once stopped", lambda: "long" not in _names(reconcile))
    assert not (config.root / "containers" / long).exists()
    assert _names(reconcile) == {"kept": "exited"}
    with autoremove.supervising(config.run_dir):     # as an agent's watch holds it
        reconcile("run", "--rm", "-d", "--name", "watched", busybox_image, "true")
        time.sleep(3)                                # its exit command came and went
        assert _names(reconcile).get("watched") == "exited"
    rt = NativeRuntime(config)
    try:
        rt.restart_manager.boot()                    # what the next engine start does
        assert "watched" not in {c.name for c in rt.list_containers()}
    finally:
        rt.close()


def test_a_detached_run_rm_alone_leaves_no_cgroup_behind(cli: tuple[Reconcile, Path], busybox_image: str) -> None:
    """The only container of an engine, `run --rm -d`, removed at its exit by conmon's exit
    command: the engine's parent cgroups go with it, as after any last removal. The exit command
    ran in conmon's group (conmon's child), which a group cannot be removed while it holds, so
    `/<prefix>` and `/<prefix>/conmon` stayed in every hierarchy."""
    from reconciler.runtime.native.containers import cgroups

    reconcile, tmp = cli
    prefix = (tmp / "prefix").read_text()
    reconcile("run", "--rm", "-d", "--name", "alone", busybox_image, "true")
    _until("alone removed at its exit", lambda: "alone" not in _names(reconcile))
    _until("the engine's cgroups gone", lambda: not [h for h in cgroups.hierarchies() if (h / prefix).exists()],
           timeout=10)


def test_run_rm_takes_its_anonymous_volumes_along(cli: tuple[Reconcile, Path], busybox_image: str) -> None:
    """`run --rm` of an image with a VOLUME: the volume made for the container goes with it, in
    the foreground, attached (-i) and detached, as `docker run --rm` removes it; a named volume
    it mounts stays."""
    reconcile, _ = cli
    reconcile("run", "--name", "base", busybox_image, "true")
    reconcile("commit", "-c", "VOLUME /anon", "base", "local/withvolume:1")
    reconcile("rm", "base")
    reconcile("run", "--rm", "-v", "kept:/kept", "local/withvolume:1", "sh", "-c", "echo x > /anon/f")
    proc = subprocess.run([sys.executable, "-m", "reconciler", "run", "--rm", "-i", "local/withvolume:1", "cat"],
                          cwd=REPO, env={**os.environ, "RECONCILER_ROOT": str(cli[1] / "root"),
                                         "RECONCILER_RUN_DIR": str(cli[1] / "run"),
                                         "RECONCILER_PREFIX": (cli[1] / "prefix").read_text()},
                          input=b"typed\n", capture_output=True, check=False, timeout=120)
    assert (proc.returncode, proc.stdout) == (0, b"typed\n"), proc.stderr
    reconcile("run", "--rm", "-d", "--name", "away", "local/withvolume:1", "true")
    _until("away removed at its exit", lambda: "away" not in _names(reconcile))
    assert reconcile("volume", "ls", "-q").stdout.split() == ["kept"]


def test_a_missing_bind_source_is_made_0755_as_dockerd_makes_it(cli: tuple[Reconcile, Path],
                                                                 busybox_image: str) -> None:
    """`run -v /host/new/dir:/data` where the host path does not exist: it is made, each missing
    directory 0755 as dockerd makes them, whatever the CLI's private umask (077: they were 0700,
    and a container's non-root user could not enter its own bind)."""
    reconcile, tmp = cli
    src = tmp / "host" / "new" / "dir"
    (tmp / "host").mkdir(mode=0o711)
    out = reconcile("run", "--rm", "--network", "none", "--user", "1000:1000", "-v", f"{src}:/data", busybox_image,
                    "sh", "-c", "ls -ld /data >/dev/null && echo entered").stdout
    assert out == "entered\n"
    assert [oct(p.stat().st_mode & 0o777) for p in (src.parent, src)] == ["0o755", "0o755"]
    assert oct((tmp / "host").stat().st_mode & 0o777) == "0o711"        # what was there is left as it was
