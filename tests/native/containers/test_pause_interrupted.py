"""A pause interrupted by a signal after runc froze the cgroup: the container is thawed, not
left frozen under a record that says it runs (a `container export --leave-running` stopped by
^C or SIGTERM while `runc pause` returned)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reconciler.cli.main import main
from reconciler.runtime.native.containers import cgroups
from tests.helpers.host import Host

pytestmark = [pytest.mark.root, pytest.mark.registry]

REPO = Path(__file__).resolve().parents[3]


def test_a_signal_after_runc_froze_the_container_thaws_it(tmp_path: Path, host: Host, busybox_image: str) -> None:
    assert main(["run", *host.cli_args(), "-d", "--name", "app", "--network", "none", busybox_image,
                 "sleep", "3600"]) == 0
    real = shutil.which("runc")
    assert real is not None
    wrapper = tmp_path / "bin"
    wrapper.mkdir()
    mark = tmp_path / "paused"
    # runc itself, then, after a `pause` that froze the cgroup, a wait in which the signal lands
    (wrapper / "runc").write_text(f"""#!/bin/sh
{real} "$@"; rc=$?
for a in "$@"; do if [ "$a" = pause ]; then touch {mark}; sleep 5; fi; done
exit $rc
""")
    (wrapper / "runc").chmod(0o755)
    env = {**os.environ, "PATH": f"{wrapper}:{os.environ['PATH']}"}
    with (tmp_path / "err").open("wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "reconciler", "container", "export", "--leave-running", "app",
                                 "-o", str(tmp_path / "app.tar"), *host.cli_args()[:-2]],
                                cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=err)
    try:
        deadline = time.monotonic() + 60
        while not mark.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert mark.exists(), (tmp_path / "err").read_text()
        rec = host.runtime().containers.get("app")
        assert cgroups.frozen(host.config.name_prefix, rec.id)        # runc froze it: the window is open
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 143
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    rec = host.runtime().containers.get("app")
    assert not rec.paused
    assert not cgroups.frozen(host.config.name_prefix, rec.id)        # thawed, as the record says
    assert not (tmp_path / "app.tar").exists()


def test_pause_and_unpause_as_docker(host: Host, busybox_image: str, capsys: pytest.CaptureFixture[str]) -> None:
    """`reconcile pause` / `unpause`: the cgroup frozen and thawed, ps says so, a second pause is
    refused with dockerd's words (exit 1), and the names done are printed as docker does."""
    assert main(["run", *host.cli_args(), "-d", "--name", "app", "--network", "none", busybox_image,
                 "sleep", "3600"]) == 0
    rec = host.runtime().containers.get("app")
    capsys.readouterr()
    assert main(["pause", *host.cli_args()[:-2], "app"]) == 0
    assert capsys.readouterr().out == "app\n"
    assert cgroups.frozen(host.config.name_prefix, rec.id)
    assert main(["ps", *host.cli_args()[:-2]]) == 0
    assert "(Paused)" in capsys.readouterr().out
    assert main(["pause", *host.cli_args()[:-2], "app"]) == 1
    assert "already paused" in capsys.readouterr().err
    assert main(["unpause", *host.cli_args()[:-2], "app"]) == 0
    assert not cgroups.frozen(host.config.name_prefix, rec.id)
    assert not host.runtime().containers.get("app").paused
