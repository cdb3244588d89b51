"""Shared bits of the executor and pass tests: manifests on disk, a fake runtime, a state DB."""

from __future__ import annotations

import textwrap
from pathlib import Path

from reconciler import spec
from reconciler._sqlite import Database
from reconciler.cli.main import main
from reconciler.execution import executor, passes
from reconciler.runtime.fake import FakeRuntime
from reconciler.spec import models

IMG = "registry.local:5000/shop/web:1"


def write(dir_: Path, name: str, text: str) -> Path:
    dir_.mkdir(parents=True, exist_ok=True)
    p = dir_ / name
    p.write_text(textwrap.dedent(text).lstrip())
    return p


def container_doc(name: str, *, image: str = IMG, extra: str = "") -> str:
    body = textwrap.indent(textwrap.dedent(extra).strip("\n"), "  ") if extra else ""
    return (f"---\napiVersion: reconciler/v1\nkind: Container\nmetadata:\n  name: {name}\n"
            f"spec:\n  image: {image}\n{body}\n")


def fake_root(tmp: Path) -> Path:
    """A state root for `--runtime fake` whose fake registry has IMG."""
    root = tmp / "root"
    FakeRuntime.at_root(root).publish(IMG)
    return root


def fake_cli(root: Path, *args: str) -> int:
    """`reconcile <args>` in this process on the fake engine under `root`; its exit code."""
    return main([*args, "--root", str(root), "--runtime", "fake"])


def load(dir_: Path) -> models.DesiredState:
    return spec.load(dir_)


class FakeClock:
    """A clock the executor's health waits advance instead of sleeping."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds


def exec_options(clock: FakeClock | None = None, workers: int = 4) -> executor.ExecuteOptions:
    clock = clock or FakeClock()
    return executor.ExecuteOptions(max_workers=workers, poll_interval=1.0, clock=clock, sleep=clock.sleep)


def apply(
    manifests: Path, rt: FakeRuntime, db: Database, *, now: float = 1_800_000_000.0, **opts: object,
) -> passes.PassResult:
    return passes.run_pass(load(manifests), rt, db, passes.PassOptions(**opts),  # type: ignore[arg-type]
                           now=now, execute_options=exec_options())
