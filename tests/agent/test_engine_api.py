"""The agent serving the Docker Engine API for its native engine (`engine_api:` in its config),
driven by the real docker CLI: its containers are visible and marked as owned, a change made
through the API to an owned one is drift the next pass corrects, an unmanaged one is left alone,
`reconcile engine-api` refuses to run beside it, and a container paused through it is down."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.runtime.native.backend import NativeRuntime
from reconciler.runtime.native.config import NativeConfig
from tests.agent.conftest import AgentProc, wait_for
from tests.agent.test_native import doc
from tests.api.test_engine_api import REPO, docker
from tests.runtime.conftest import cleanup, leftovers

pytestmark = [pytest.mark.root, pytest.mark.registry, pytest.mark.slow,
              pytest.mark.skipif(shutil.which("docker") is None, reason="needs the docker CLI")]


def test_the_agent_serves_the_engine_api_for_its_engine(tmp_path: Path, agents: list[AgentProc],
                                                      busybox_image: str) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "web.yaml").write_text(doc("web", busybox_image, "sleep 3600"))
    a = AgentProc(tmp_path, runtime="native", sources=[{"name": "host", "directory": str(tmp_path / "m")}],
                  engine_api={})
    agents.append(a)
    try:
        a.start()
        sock = str(a.run_dir / "docker.sock")
        wait_for("web running", lambda: "web" in docker(sock, "ps", "--format", "{{.Names}}").stdout.split())
        labels = json.loads(docker(sock, "inspect", "web").stdout)[0]["Config"]["Labels"]
        assert labels["reconciler.owner"] == "host"                    # an owned object, marked as such
        docker(sock, "run", "-d", "--name", "mine", "--network", "none", busybox_image, "sleep", "3600")
        docker(sock, "stop", "-t", "1", "web")                          # a change to an owned object: drift
        a.reconcile("host")
        running = docker(sock, "ps", "--format", "{{.Names}}").stdout.split()
        assert sorted(running) == ["mine", "web"]                       # corrected; the unmanaged one left alone
        refused = subprocess.run(
            [sys.executable, "-m", "reconciler", "engine-api", "--root", str(a.root), "--run-dir", str(a.run_dir),
             "--name-prefix", a.prefix, "--socket", str(tmp_path / "other.sock")],
            cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
        assert refused.returncode != 0
        assert "engine_api" in refused.stderr
        docker(sock, "rm", "-f", "mine")
    finally:
        a.stop()
        rt = NativeRuntime(NativeConfig(root=a.root, run_dir=a.run_dir, name_prefix=a.prefix))
        try:
            cleanup(rt)
            left = leftovers(rt.config)
        finally:
            rt.close()
        assert left == []
    assert not (a.run_dir / "docker.sock").exists()


def test_a_container_paused_through_the_engine_api_is_down_for_the_agent(
        tmp_path: Path, agents: list[AgentProc], busybox_image: str) -> None:
    """`docker pause` of a desired container: the agent's ps says Paused, its status and a pass
    say it is down ("paused", not converged), and the metric counts it; unpaused, converged."""
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "web.yaml").write_text(doc("web", busybox_image, "sleep 3600"))
    a = AgentProc(tmp_path, runtime="native", sources=[{"name": "host", "directory": str(tmp_path / "m")}],
                  engine_api={})
    agents.append(a)
    try:
        a.start()
        sock = str(a.run_dir / "docker.sock")
        wait_for("web converged", lambda: a.source("host")["last_result"] == "converged")
        docker(sock, "pause", "web")
        ps = subprocess.run([sys.executable, "-m", "reconciler", "ps", "--root", str(a.root)],
                            cwd=REPO, capture_output=True, text=True, timeout=60, check=True).stdout
        assert "(Paused)" in ps.splitlines()[1], ps
        src = a.reconcile("host")["sources"][0]
        assert src["last_result"] == "degraded"
        assert src["down"] == {"web": "paused"}
        assert [o["status"] for o in src["objects"]] == ["paused"]
        assert 'reconciler_containers_down{source="host"} 1.0' in a.api.get("/metrics")
        docker(sock, "unpause", "web")
        src = a.reconcile("host")["sources"][0]
        assert (src["last_result"], src["down"]) == ("converged", {})
        assert 'reconciler_containers_down{source="host"} 0.0' in a.api.get("/metrics")
    finally:
        a.stop()
        rt = NativeRuntime(NativeConfig(root=a.root, run_dir=a.run_dir, name_prefix=a.prefix))
        try:
            cleanup(rt)
            left = leftovers(rt.config)
        finally:
            rt.close()
        assert left == []
