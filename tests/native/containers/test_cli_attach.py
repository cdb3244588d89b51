"""`reconcile attach` and `start -a [-i]` on the native engine, as `docker attach` and `docker start
-a` behave, and what they need of `run -d`."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.native.containers.test_cli import Reconcile
from tests.native.containers.test_cli import cli as cli  # the fixture

pytestmark = [pytest.mark.root, pytest.mark.registry]


def test_run_d_with_i_or_t_makes_it_with_an_open_stdin_or_a_terminal(cli: tuple[Reconcile, Path],
                                                                    busybox_image: str) -> None:
    """`run -d -i` / `-d -t` (docker run -dit) make the container with its stdin open / on a
    terminal, for a later `attach`: they made it as `run -d` alone (its stdin /dev/null, so a
    `sh` ended at once)."""
    reconcile, _ = cli
    for name, flags in (("plain", ()), ("open", ("-i",)), ("term", ("-t",))):
        reconcile("run", "-d", *flags, "--network", "none", "--name", name, busybox_image, "sleep", "1000")
    stdin = {name: reconcile("exec", name, "ls", "-l", "/proc/1/fd/0").stdout.split(" -> ")[-1].strip()
             for name in ("plain", "open", "term")}
    assert stdin["plain"] == "/dev/null"
    assert stdin["open"].startswith("pipe:")
    assert stdin["term"].startswith("/dev/pts/")
