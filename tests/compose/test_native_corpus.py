"""The corpus converges on the native engine and serves (root; a real registry, runc + conmon).

Each project of tests/compose/corpus that runs from local images is rewritten as the compose
oracle rewrites it (tests/helpers/compose_corpus.py, `serve`: every service that publishes a tcp
port runs busybox httpd on it), applied with `reconcile apply` on an engine of the test's own
(own root, run dir, name prefix and subnet pool, leased host ports), and then: every container
the project names runs, every published tcp port of the desired state answers HTTP on 127.0.0.1 with the container's
own files, and `reconcile diff` finds nothing to do. Skipped, with the reason: projects that
build an image, those that use an external network or volume (made outside the project), and
those asking for a ulimit above this host's hard limit (the test machines' engine has no
CAP_SYS_RESOURCE).
Teardown (the `host` fixture) removes everything and fails the test on leftovers.
"""

from __future__ import annotations

import json
import resource
import secrets
import shutil
import string
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from reconciler import spec
from reconciler.runtime import base
from tests.helpers import subnets
from tests.helpers.compose_corpus import runnable, variables
from tests.helpers.host import Host
from tests.helpers.ports import publish_ports

pytestmark = [pytest.mark.root, pytest.mark.registry, pytest.mark.slow]

CORPUS = Path(__file__).parent / "corpus"
PROJECTS = sorted(p.name for p in CORPUS.iterdir() if p.is_dir())


def _answers(port: int, timeout: float = 30.0) -> str:
    """The body of GET /etc/hostname on 127.0.0.1:port (busybox httpd serves / there)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/etc/hostname", timeout=3) as resp:
                return str(resp.read().decode().strip())
        except (OSError, urllib.error.URLError) as exc:
            if time.monotonic() > deadline:
                raise AssertionError(f"127.0.0.1:{port} does not answer: {exc}") from None
            time.sleep(0.3)


def _above_hard_limits(desired: spec.DesiredState) -> str:
    """A ulimit some container asks for above what this process may grant ("" if none)."""
    for c in desired.containers.values():
        for u in c.ulimits:
            limit = getattr(resource, f"RLIMIT_{u.name.upper()}", None)
            hard = resource.getrlimit(limit)[1] if limit is not None else resource.RLIM_INFINITY
            if hard != resource.RLIM_INFINITY and max(u.soft, u.hard) > hard:
                return f"ulimit {u.name} {u.hard} ({c.name})"
    return ""


@pytest.mark.parametrize("name", PROJECTS)
def test_corpus_project_converges_on_the_native_engine_and_serves(
    name: str, tmp_path: Path, host: Host, busybox_image: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    expected = json.loads((CORPUS / name / "expected.json").read_text())
    tree = tmp_path / "tree" / name
    shutil.copytree(CORPUS / name, tree)
    project = tree / expected.get("dir", "")
    rewrite = runnable(tree, "nc" + "".join(secrets.choice(string.ascii_lowercase) for _ in range(5)), serve=True)
    if rewrite.builds:
        pytest.skip(f"{name}: services {', '.join(rewrite.builds)} build their image (build:)")
    if rewrite.externals:
        pytest.skip(f"{name}: it uses an external {rewrite.externals[0][0][:-1]} (made outside the project)")
    block = subnets.lease_block()
    try:
        ports = publish_ports(rewrite.ports)
        env = {"IMAGE": busybox_image, "COMPOSE_PROJECT_NAME": "nc" + name.replace("-", "")[:10]}
        env |= {f"PORT_{n}": str(p) for n, p in enumerate(ports)}
        env |= {f"SUBNET_{n}": str(s) for n, s in zip(range(rewrite.subnets), block.subnets(new_prefix=26), strict=False)}
        for var in variables(tree) | {"COMPOSE_FILE", "COMPOSE_PROFILES"}:
            monkeypatch.delenv(var, raising=False)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        desired = spec.load(project, compose=spec.ComposeOptions(environ=env))
        over = _above_hard_limits(desired)
        if over:
            pytest.skip(f"{name}: asks for {over}, above this host's hard limit (the engine lacks CAP_SYS_RESOURCE here)")
        assert host.cli("apply", str(project)) == 0
        wanted = {c.labels["com.docker.compose.service"] for c in desired.containers.values()}
        rt = host.runtime()
        try:
            running = {c.labels.get("com.docker.compose.service") for c in rt.list_containers({"reconciler.owner": "default"})
                       if c.status == base.ContainerStatus.RUNNING}
        finally:
            rt.close()
        assert running == wanted
        published = [p.host_port for c in desired.containers.values() for p in c.ports if p.protocol == "tcp"]
        assert set(published) <= set(ports)
        for port in published:
            assert _answers(port)
        assert host.cli("diff", str(project)) == 0
    finally:
        subnets.release(block)
