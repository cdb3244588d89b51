"""Shared bits of the executor and pass tests: manifests on disk, a fake runtime, a state DB."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

from reconciler import spec
from reconciler._sqlite import Database
from reconciler.cli.main import main
from reconciler.execution import executor, passes
from reconciler.runtime.fake import FakeRuntime
from reconciler.spec import models

IMG = "registry.local:5000/shop/web:1"
# what stopping on SIGTERM may take beyond the stop timeout of a container being stopped: the
# rest of its replacement (remove, create, start), the pass's records, closing the engine
# (README, Operations)
STOP_MARGIN = 10.0


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


def exec_options(clock: FakeClock | None = None, workers: int = 4,
                 stop: Callable[[], bool] | None = None) -> executor.ExecuteOptions:
    clock = clock or FakeClock()
    return executor.ExecuteOptions(max_workers=workers, poll_interval=1.0, clock=clock, sleep=clock.sleep,
                                   stop=stop)


def apply(
    manifests: Path, rt: FakeRuntime, db: Database, *, now: float = 1_800_000_000.0, **opts: object,
) -> passes.PassResult:
    return passes.run_pass(load(manifests), rt, db, passes.PassOptions(**opts),  # type: ignore[arg-type]
                           now=now, execute_options=exec_options())


def trap(name: str) -> str:
    """PID 1 that notes SIGTERM as /marks/NAME-GEN and goes on, unless /marks/obey exists."""
    return (f"trap 'if [ -f /marks/obey ]; then exit 0; fi; touch /marks/{name}-$GEN' TERM; "
            "while true; do sleep 0.2; done")


def trapping_app(m: Path, image: str, subnet: str, marks: Path, names: list[str], generation: int, *,
                 stop_timeout: str = "3s", extra: tuple[str, ...] = ()) -> None:
    """`m/app.yaml`: a network `stop` on `subnet` and the containers `names`, each running
    trap(name) with GEN=generation and `marks` at /marks; `extra`: more lines of each spec."""
    docs = [f"apiVersion: reconciler/v1\nkind: Network\nmetadata: {{name: stop}}\nspec: {{subnet: {subnet}}}\n"]
    for name in names:
        spec = [f"image: {image}", f'command: [sh, -c, "{trap(name)}"]', f'env: {{GEN: "{generation}"}}',
                "networks: [stop]", f'volumes: ["{marks}:/marks"]', f"stopTimeout: {stop_timeout}", *extra]
        docs.append(f"apiVersion: reconciler/v1\nkind: Container\nmetadata: {{name: {name}}}\nspec:\n"
                    + "".join(f"  {line}\n" for line in spec))
    m.mkdir(parents=True, exist_ok=True)
    (m / "app.yaml").write_text("---\n".join(docs))
