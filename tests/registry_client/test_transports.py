"""The client's transports (#21): a registry spoken to in plain http (loopback, insecure hosts)
costs no CA bundle load, and https still verifies against it. Observed from outside: the CA
bundle file is opened (strace) only by a client that speaks https."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.helpers.registry import RegistryServer, free_port

pytestmark = pytest.mark.registry

REPO = Path(__file__).resolve().parents[2]


def _opened_files(tmp_path: Path, code: str) -> str:
    """The openat calls of a fresh interpreter running `code` with the client imported."""
    if shutil.which("strace") is None:
        pytest.skip("strace is not installed")
    log = tmp_path / "openat.log"
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(REPO)!r})
        import certifi
        from reconciler import registry_client as rc
        print(certifi.where())
    """) + textwrap.dedent(code)
    out = subprocess.run(["strace", "-f", "-qq", "-e", "trace=openat", "-o", str(log), sys.executable, "-c", script],
                         check=True, capture_output=True, text=True, cwd=REPO).stdout
    return out.splitlines()[0] + "\n" + log.read_text()


def test_plain_http_loads_no_ca_bundle_and_https_still_verifies(tmp_path: Path, registry: RegistryServer) -> None:
    plain = _opened_files(tmp_path, f"""
        with rc.RegistryClient() as c:
            c.check_login("{registry.host}")
    """)
    bundle, log = plain.split("\n", 1)
    assert bundle not in log, "a client that only spoke plain http should not load the CA bundle"
    # https to a closed loopback port (registries are https unless loopback or insecure; the
    # client's own connection is asked directly, so no name is looked up off this host)
    tls = _opened_files(tmp_path, f"""
        import contextlib, httpx
        with rc.RegistryClient() as c, contextlib.suppress(httpx.ConnectError):
            c._http.get("https://127.0.0.1:{free_port()}/v2/")
    """)
    bundle, log = tls.split("\n", 1)
    assert bundle in log, "an https request should verify against the CA bundle"
