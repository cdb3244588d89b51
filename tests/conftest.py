"""Test-wide fixtures: real servers on loopback, real images, per-test state roots.

Warnings are errors (pyproject). Tests that change the host (mounts, namespaces, cgroups) are
marked `root`; each gets its own state root and names so runs never collide or leak.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.helpers import images
from tests.helpers.registry import RegistryServer

if TYPE_CHECKING:
    from tests.helpers.host import Host

REPO = Path(__file__).resolve().parent.parent


# The host's own engine lives here; no test may make or touch them (the brief's first safety rule).
HOST_STATE = (Path("/var/lib/reconciler"), Path("/run/reconciler"))


def pytest_configure(config: pytest.Config) -> None:
    """A `reconcile` a test runs without `--root` or its own RECONCILER_ROOT gets a root of this
    process's, never the host's default: the env var names one under /tmp (a run dir follows a
    non-default root), removed at the end; RECONCILER_SUBNET_POOL a pool no other process uses. The controller notes which host paths exist, to
    fail the run if a test made one (pytest_sessionfinish)."""
    root = tempfile.mkdtemp(prefix="rtestroot", dir="/tmp")
    os.environ["RECONCILER_ROOT"] = root
    os.environ.pop("RECONCILER_RUN_DIR", None)
    config.stash[_ROOT] = root
    # and its bridge networks a subnet pool of this process's (a leased /22): `reconcile run`
    # without --network makes the engine's default network, never in the shared default pool
    from tests.helpers import subnets

    os.environ["RECONCILER_SUBNET_POOL"] = str(subnets.lease_block())
    config.stash[_HOST_BEFORE] = {str(p) for p in HOST_STATE if os.path.lexists(p)}


def pytest_unconfigure(config: pytest.Config) -> None:
    root = config.stash.get(_ROOT, None)
    if root is None:
        return
    with open("/proc/self/mountinfo") as f:
        mounted = any(line.split()[4].startswith(root + "/") for line in f)
    if mounted:
        # a `reconcile` a test ran here without a root of its own left a container (its rootfs
        # mounted, its monitor running): tear its engine down rather than leave it on the host
        _tear_down_session_root(Path(root))
    shutil.rmtree(root, ignore_errors=True)


def _tear_down_session_root(root: Path) -> None:
    import sys

    from reconciler.runtime.native.config import NativeConfig
    from tests.helpers.host import force_remove_all

    try:
        run_dir = Path((root / "run-dir").read_text().strip())
        prefix = (root / "name-prefix").read_text().strip()
        force_remove_all(NativeConfig(root=root, run_dir=run_dir, name_prefix=prefix))
        shutil.rmtree(run_dir, ignore_errors=True)
        claim = Path("/run/reconciler-prefixes") / prefix
        if claim.is_file() and claim.read_text().strip() == str(root):
            claim.unlink()
    except Exception as exc:
        print(f"could not tear down the engine left on the session root {root}: {exc}", file=sys.stderr)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if hasattr(session.config, "workerinput"):
        return                  # xdist's workers: the controller looks once, at the very end
    made = sorted({str(p) for p in HOST_STATE if os.path.lexists(p)} - session.config.stash.get(_HOST_BEFORE, set()))
    if made:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"ERROR: the run made the host engine's {', '.join(made)}: a test ran "
                                "reconciler on the default state root (give it --root or RECONCILER_ROOT)",
                                red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


_ROOT = pytest.StashKey[str]()
_HOST_BEFORE = pytest.StashKey[set[str]]()


@pytest.hookimpl(trylast=True)       # after pytest-xdist's own (see _xdist_groups)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    _xdist_groups(config, items)
    is_root = os.geteuid() == 0
    for item in items:
        if "root" in item.keywords and not is_root:
            item.add_marker(pytest.mark.skip(reason="needs root (run the README's test command as root)"))
        if "registry" in item.keywords and shutil.which("docker-registry") is None:
            item.add_marker(pytest.mark.skip(reason="docker-registry not installed"))


def _xdist_groups(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep each `xdist_group` on one worker. Under `--dist loadgroup` a worker names a grouped
    test's group in its node id (`...[podman]@podman`), the controller's only clue; pytest-xdist
    3.8 writes that id to `item._nodeid`, which pytest 9.2 no longer reads (the id is `item._id`),
    so every group was spread over all workers: two podman services reused each other's bridge
    names (cni-podman1, 2, ...) and one's clean-up deleted the other's bridge mid-test."""
    if not getattr(config.option, "loadgroup", False):     # set on xdist's workers only
        return
    from _pytest.nodeid import coerce_node_id

    for item in items:
        groups = sorted({str(m.args[0] if m.args else m.kwargs.get("name", "default"))
                         for m in item.iter_markers("xdist_group")})
        suffix = "@" + "_".join(groups)
        if groups and not item.nodeid.endswith(suffix):
            item._id = coerce_node_id(item.nodeid + suffix)  # type: ignore[attr-defined]


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    """Tests that run `main()` in-process configure structlog to write to that test's captured
    stderr (closed afterwards); reset it so later tests (the controller's threads) can log."""
    yield
    from reconciler import logs

    logs.reset()            # a set-up recorded but not applied yet too (logs.py: structlog loads lazily)


@pytest.fixture(scope="session", autouse=True)
def _prefix_claims(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The host-wide name-prefix claims (`/run/reconciler-prefixes/<prefix>`, NativeConfig) of this
    session's state roots go at its end: pytest keeps its last tmp dirs, whose roots would
    still hold them (an engine prunes a claim only once its root is gone)."""
    yield
    from reconciler.runtime.native.config import PREFIX_CLAIMS

    base = str(tmp_path_factory.getbasetemp()).rstrip("/") + "/"
    if PREFIX_CLAIMS.is_dir():
        for claim in PREFIX_CLAIMS.iterdir():
            try:
                if not claim.name.startswith(".") and claim.read_text().strip().startswith(base):
                    claim.unlink()
            except OSError:
                continue


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """An open registry on 127.0.0.1 shared by the session (tests use their own repo names)."""
    server = RegistryServer(tmp_path_factory.mktemp("registry")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def busybox_image(registry: RegistryServer, tmp_path_factory: pytest.TempPathFactory) -> str:
    """`127.0.0.1:PORT/test/busybox:latest`, a one-layer busybox-static image in `registry`."""
    layout = tmp_path_factory.mktemp("busybox-layout")
    images.write_layout(layout, [images.busybox_layer()])
    ref = f"{registry.host}/test/busybox:latest"
    images.push_layout(layout, ref)
    return ref


@pytest.fixture
def host(tmp_path: Path) -> Iterator[Host]:
    """A native engine of the test's own (tests/helpers/host.py); fails the test on leftovers."""
    from tests.helpers.host import native_host  # imported here: only root tests load the engine

    with native_host(tmp_path) as h:
        yield h
