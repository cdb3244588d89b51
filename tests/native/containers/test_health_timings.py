"""A healthcheck's start interval on the native engine (root; runc + conmon, a real registry): an
image whose HEALTHCHECK runs every minute need not hold every start for a minute, as on Docker 25.

During the start period, until the first success, the engine probes every start interval, then
every interval."""

from __future__ import annotations

import threading
import time

import pytest

from reconciler.runtime import base
from reconciler.runtime.native.containers import health
from tests.helpers.host import Host
from tests.runtime.test_conformance import eventually

pytestmark = [pytest.mark.root, pytest.mark.registry]


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
