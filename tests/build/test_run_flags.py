"""#20 item 4: RUN --security=insecure (refused without the opt-in) and RUN --mount=type=ssh
with a real ssh-agent given to the build (the step's ssh-add lists the agent's key)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from reconciler.runtime import errors as rterrors
from tests.build.conftest import Engine

pytestmark = [pytest.mark.root, pytest.mark.registry]

Ctx = Callable[..., Path]
DOCKER_DEFAULT_CAPS = "00000000a80425fb"


def _caps(text: str) -> str:
    return next(line.split()[1] for line in text.splitlines() if line.startswith("CapEff:"))


def test_security_insecure_needs_the_opt_in(engine: Engine, context_dir: Ctx, busybox_image: str) -> None:
    ctx = context_dir({"Dockerfile": f"""FROM {busybox_image}
RUN cat /proc/self/status > /sandbox
RUN --security=insecure cat /proc/self/status > /insecure
"""})
    with pytest.raises(rterrors.RuntimeBackendError, match="RUN --security=insecure runs the step with every capability"):
        engine.build(ctx, tags=("localhost/insecure:1",))
    engine.build(ctx, tags=("localhost/insecure:1",), allow_insecure=True)
    code, out = engine.run("localhost/insecure:1", "cat", "/sandbox")
    assert code == 0, out
    assert _caps(out) == DOCKER_DEFAULT_CAPS
    code, out = engine.run("localhost/insecure:1", "cat", "/insecure")
    assert code == 0, out
    assert _caps(out) == _caps(Path("/proc/self/status").read_text())      # every capability the host has
    ctx = context_dir({"Dockerfile": f"FROM {busybox_image}\nRUN --security=other true\n"})
    with pytest.raises(rterrors.RuntimeBackendError, match="give sandbox or insecure"):
        engine.build(ctx, allow_insecure=True)


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A real ssh-agent (ours, stopped by its pid) holding a fresh key; its socket and the
    key's line in `ssh-add -l`."""
    if shutil.which("ssh-agent") is None:
        pytest.skip("ssh-agent not installed")
    sock = tmp_path / "agent.sock"
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "build-test", "-f", str(key)], check=True)
    proc = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if sock.exists():
                break
            subprocess.run(["sleep", "0.05"], check=True)
        env = {**os.environ, "SSH_AUTH_SOCK": str(sock)}
        subprocess.run(["ssh-add", "-q", str(key)], env=env, check=True, capture_output=True)
        listed = subprocess.run(["ssh-add", "-l"], env=env, check=True, capture_output=True, text=True).stdout.strip()
        yield str(sock), listed
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _ssh_add_files() -> dict[str, str | bytes]:
    """ssh-add and the libraries it loads, laid out as in the host's root (for the test image)."""
    out = subprocess.run(["ldd", "/usr/bin/ssh-add"], check=True, capture_output=True, text=True).stdout
    paths = ["/usr/bin/ssh-add"] + [w for line in out.splitlines() for w in line.split() if w.startswith("/")]
    return {"tools" + p: Path(p).resolve().read_bytes() for p in paths}


def test_ssh_mount_forwards_the_given_agent(
    engine: Engine, context_dir: Ctx, busybox_image: str, agent: tuple[str, str],
) -> None:
    sock, listed = agent
    files = _ssh_add_files()
    ctx = context_dir({"Dockerfile": f"""FROM {busybox_image}
COPY --chmod=0755 tools/ /
RUN --mount=type=ssh /usr/bin/ssh-add -l > /keys && echo "$SSH_AUTH_SOCK" > /sock
RUN --mount=type=ssh,id=other,target=/tmp/agent,uid=1000,mode=0660 stat -c '%a %u' /tmp/agent > /other
RUN --mount=type=ssh,id=absent echo "${{SSH_AUTH_SOCK:-unset}}" > /absent
""", **files})
    engine.build(ctx, tags=("localhost/ssh:1",), ssh={"default": sock, "other": sock})
    code, out = engine.run("localhost/ssh:1", "sh", "-c",
                           "cat /keys /sock /other /absent; ls -a /run/buildkit /tmp 2>&1 | grep -c agent; true")
    assert code == 0, out
    assert out.splitlines() == [listed, "/run/buildkit/ssh_agent.0", "660 1000", "unset", "0"]
    assert sock not in out

    ctx = context_dir({"Dockerfile": f"FROM {busybox_image}\nRUN --mount=type=ssh,required=true true\n"})
    with pytest.raises(rterrors.RuntimeBackendError, match="no SSH agent was given for the ssh mount 'default'"):
        engine.build(ctx)


def test_cli_allow_and_ssh_options(
    engine: Engine, context_dir: Ctx, busybox_image: str, agent: tuple[str, str], tmp_path: Path,
) -> None:
    """`reconcile build --allow security.insecure` and `--ssh ID[=SOCKET]` as a user gives them."""
    sock, _listed = agent
    ctx = context_dir({"Dockerfile": f"FROM {busybox_image}\nRUN --security=insecure --mount=type=ssh,required=true "
                                     "test -S \"$SSH_AUTH_SOCK\"\n"})
    base = [sys.executable, "-m", "reconciler", "build", "--root", str(engine.config.root), "--run-dir",
            str(engine.config.run_dir), "--name-prefix", engine.config.name_prefix, "-q"]
    env = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}

    def build(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*base, *args, str(ctx)], capture_output=True, text=True, timeout=300, check=False,
                              env={**env, **extra})

    refused = build("--ssh", f"default={sock}")
    assert refused.returncode == 1
    assert "--allow security.insecure" in refused.stderr
    done = build("--allow", "security.insecure", "--ssh", "default", SSH_AUTH_SOCK=sock)
    assert done.returncode == 0, done.stderr
    (tmp_path / "key").write_text("not a socket")
    bad = build("--allow", "security.insecure", "--ssh", f"default={tmp_path / 'key'}")
    assert bad.returncode == 2
    assert "is not an SSH agent socket" in bad.stderr
    unset = build("--allow", "security.insecure", "--ssh", "default")
    assert unset.returncode == 2
    assert "SSH_AUTH_SOCK is not set" in unset.stderr
