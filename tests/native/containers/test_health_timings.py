"""A healthcheck's start interval on the native engine (root; runc + conmon, a real registry): an
image whose HEALTHCHECK runs every minute need not hold every start for a minute, as on Docker 25.

During the start period, until the first success, the engine probes every start interval, then
every interval; a healthcheck without test runs the image's test with the manifest's timings; a
start whose first check would come after its wait fails at once, saying what to change."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from reconciler.runtime import base
from reconciler.runtime.native.containers import health
from tests.execution.helpers import write
from tests.helpers import images
from tests.helpers.host import Host
from tests.helpers.registry import RegistryServer
from tests.runtime.test_conformance import eventually

pytestmark = [pytest.mark.root, pytest.mark.registry]

MINUTE = 60 * 10**9


def slow_checked_image(registry: RegistryServer, tmp_path: Path, name: str) -> str:
    """busybox whose HEALTHCHECK (`test -f /tmp/ready`) runs every minute, as images commonly say."""
    layout = tmp_path / f"{name}-layout"
    images.write_layout(layout, [images.busybox_layer()], config={
        "Cmd": ["/bin/sh"], "Env": ["PATH=/bin"],
        "Healthcheck": {"Test": ["CMD", "test", "-f", "/tmp/ready"], "Interval": MINUTE, "Timeout": 5 * 10**9,
                        "Retries": 3}})
    ref = f"{registry.host}/timings/{name}:1"
    images.push_layout(layout, ref)
    return ref


def test_probes_come_every_start_interval_until_healthy_then_every_interval(host: Host, busybox_image: str) -> None:
    """Interval 60 s, start interval 0.3 s: ready after about 1 s, healthy within a couple of
    seconds; the failures before count for nothing (start period), and once healthy no probe
    comes for a minute."""
    rt = host.runtime()
    stop = threading.Event()
    checker = health.HealthChecker(rt.containers)
    watch = threading.Thread(target=checker.watch, args=(stop,), kwargs={"poll": 0.2}, daemon=True)
    try:
        rt.pull_image(busybox_image)
        hc = base.Healthcheck(("CMD", "test", "-f", "/tmp/ready"), interval=60, timeout=5, retries=1,
                              start_period=30, start_interval=0.3)
        cid = rt.create_container(base.ContainerConfig(
            name="quick", image=busybox_image, command=("sh", "-c", "sleep 1; touch /tmp/ready; sleep 600"),
            networks=("none",), healthcheck=hc))
        rt.start_container(cid)
        assert rt.inspect_container(cid).first_probe == 0.3
        started = time.monotonic()
        watch.start()
        eventually(lambda: rt.containers.get(cid).health == "healthy", timeout=10)
        assert time.monotonic() - started < 5
        log = rt.containers.get(cid).health_log
        codes = [e["ExitCode"] for e in log]
        assert codes[-1] == 0
        assert 1 in codes                                      # failed first, and that did not count
        time.sleep(1.5)                                        # five start intervals: none now it is healthy
        assert rt.containers.get(cid).health_log == log
        assert rt.inspect_document(cid)["Config"]["Healthcheck"]["StartInterval"] == 300_000_000
    finally:
        stop.set()
        if watch.is_alive():
            watch.join(timeout=10)
        rt.close()


def test_a_healthcheck_without_test_gives_the_images_its_start_interval_through_apply(
        host: Host, registry: RegistryServer, tmp_path: Path) -> None:
    """The image checks every minute (longer than the 60 s wait): the manifest keeps its test and
    adds a start period and start interval, and the start is healthy within seconds."""
    image = slow_checked_image(registry, tmp_path, "slow")
    m = tmp_path / "m"
    write(m, "c.yaml", f"""
        apiVersion: reconciler/v1
        kind: Container
        metadata: {{name: app}}
        spec:
          image: "{image}"
          command: [sh, -c, "sleep 1; touch /tmp/ready; sleep 600"]
          healthcheck: {{startPeriod: 2m, startInterval: 500ms}}
          networks: [none]
        """)
    started = time.monotonic()
    assert host.cli("apply", str(m)) == 0
    assert time.monotonic() - started < 30                      # not the image's minute
    rt = host.runtime()
    try:
        assert rt.inspect_container("app").health == "healthy"
        assert rt.inspect_document("app")["Config"]["Healthcheck"] == {
            "Test": ["CMD", "test", "-f", "/tmp/ready"], "Interval": MINUTE, "Timeout": 5 * 10**9, "Retries": 3,
            "StartPeriod": 120 * 10**9, "StartInterval": 500_000_000}
    finally:
        rt.close()


def test_a_start_whose_first_check_comes_after_its_wait_fails_at_once_naming_the_fix(
        host: Host, registry: RegistryServer, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """The image's check every minute, a 60 s wait: the start fails without waiting it out."""
    image = slow_checked_image(registry, tmp_path, "late")
    m = tmp_path / "m"
    write(m, "c.yaml", f"""
        apiVersion: reconciler/v1
        kind: Container
        metadata: {{name: app}}
        spec: {{image: "{image}", command: [sh, -c, "touch /tmp/ready; sleep 600"], networks: [none]}}
        """)
    capfd.readouterr()
    started = time.monotonic()
    assert host.cli("apply", str(m)) == 1
    assert time.monotonic() - started < 30
    out = capfd.readouterr().out
    assert "app cannot be healthy within update.healthTimeout (60s): its healthcheck first runs 60s after its " \
           "start; probe sooner while it starts (healthcheck.startPeriod with a startInterval under 60s" in out, out
