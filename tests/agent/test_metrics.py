"""The agent's metrics (agent/metrics.py) write what prometheus_client's own metric objects
write for the same updates, and updating them loads no prometheus_client: only a scrape does."""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import prometheus_client as pc

from reconciler.agent import metrics

REPO = Path(__file__).resolve().parents[2]
BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


def _reference() -> tuple[pc.CollectorRegistry, dict[str, Any]]:
    """The metrics as prometheus_client's Counter, Gauge and Histogram (what the agent used)."""
    r = pc.CollectorRegistry(auto_describe=True)
    m: dict[str, Any] = {
        "passes": pc.Counter("reconciler_passes", "Reconcile passes by source and result", ["source", "result"],
                             registry=r),
        "pass_duration": pc.Histogram("reconciler_pass_duration_seconds", "Duration of a reconcile pass",
                                      ["source"], registry=r, buckets=BUCKETS),
        "source_error": pc.Gauge("reconciler_source_error",
                                 "1 while the source's newest revision cannot be fetched or loaded",
                                 ["source", "reason"], registry=r),
        "source_suspended": pc.Gauge("reconciler_source_suspended", "1 while the source is suspended", ["source"],
                                     registry=r),
        "last_applied": pc.Gauge("reconciler_last_applied_timestamp_seconds",
                                 "When the source's revision last converged", ["source"], registry=r),
        "drift": pc.Gauge("reconciler_drift_objects", "Objects drifted and only reported (drift: report)",
                          ["source"], registry=r),
        "restarts": pc.Counter("reconciler_container_restarts", "Restarts made by restart policies", registry=r),
        "flapping": pc.Gauge("reconciler_containers_flapping", "Containers over the flap limit, left stopped",
                             registry=r),
        "managed": pc.Gauge("reconciler_containers_managed", "Containers the agent's sources own", ["source"],
                            registry=r),
        "down": pc.Gauge("reconciler_containers_down", "Desired containers that, after the last pass, do not run "
                         "as their spec says (the pass is 'degraded')", ["source"], registry=r),
    }
    return r, m


def _masked(text: str) -> str:
    return re.sub(r"(_created(\{[^}]*\})?) \S+$", r"\1 T", text, flags=re.M)


def test_the_text_is_prometheus_clients_for_the_same_updates() -> None:
    rnd = random.Random(7)
    ours = metrics.Metrics()
    registry, ref = _reference()
    sources = ["a", "b", "c"]
    for _ in range(400):
        s, op = rnd.choice(sources), rnd.randrange(8)
        result, seconds = rnd.choice(["converged", "failed"]), rnd.choice([0.01, 0.1, 0.3, 1, 4.2, 99, 1000])
        flags, count = [rnd.random() < 0.5 for _ in range(2)], rnd.randrange(9)
        for get in (lambda n: getattr(ours, n), ref.__getitem__):
            if op == 0:
                get("passes").labels(s, result).inc()
            elif op == 1:
                get("pass_duration").labels(s).observe(seconds)
            elif op == 2:
                for reason, on in zip(("fetch", "invalid"), flags, strict=True):
                    get("source_error").labels(s, reason).set(1 if on else 0)
            elif op == 3:
                get("managed").labels(s).set(count)
            elif op == 4:
                get("restarts").inc()
            elif op == 5:
                get("flapping").set(count % 3)
            elif op == 6:
                get("last_applied").labels(s).set(1_700_000_000.5)
            else:
                for name in ("down", "drift", "managed", "source_suspended", "last_applied"):
                    try:
                        get(name).remove(s)
                    except KeyError:
                        pass
    ours_text = ours.render()[0].decode()
    ref_text = pc.generate_latest(registry).decode()
    assert _masked(ours_text) == _masked(ref_text)
    assert "reconciler_pass_duration_seconds_bucket" in ours_text
    assert ours.render()[1] == pc.CONTENT_TYPE_LATEST


def test_updates_load_no_prometheus_client_and_a_scrape_does() -> None:
    script = ("import sys\nfrom reconciler.agent import metrics\nm = metrics.Metrics()\n"
              "m.passes.labels('s', 'converged').inc(); m.pass_duration.labels('s').observe(0.2); m.flapping.set(1)\n"
              "m.set_error('s', 'fetch'); m.forget('s')\n"
              "print('prometheus_client' in sys.modules)\n"
              "print(b'reconciler_containers_flapping 1.0' in m.render()[0], 'prometheus_client' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, check=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.stdout.split() == ["False", "True", "True"]
