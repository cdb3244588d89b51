"""The agent's Prometheus metrics (prometheus_client), in a registry of their own."""

from __future__ import annotations

from typing import Any

__all__ = ["Metrics"]


class Metrics:
    """Collectors; label `source` is the source's name (never a URL or a path with secrets)."""

    def __init__(self) -> None:
        import prometheus_client as pc

        self._pc = pc
        self.registry = pc.CollectorRegistry(auto_describe=True)
        r = self.registry
        self.passes = pc.Counter("reconciler_passes", "Reconcile passes by source and result",
                                 ["source", "result"], registry=r)
        self.pass_duration = pc.Histogram("reconciler_pass_duration_seconds", "Duration of a reconcile pass",
                                          ["source"], registry=r,
                                          buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300))
        self.source_error = pc.Gauge("reconciler_source_error",
                                     "1 while the source's newest revision cannot be fetched or loaded",
                                     ["source", "reason"], registry=r)
        self.source_suspended = pc.Gauge("reconciler_source_suspended", "1 while the source is suspended",
                                         ["source"], registry=r)
        self.last_applied = pc.Gauge("reconciler_last_applied_timestamp_seconds",
                                     "When the source's revision last converged", ["source"], registry=r)
        self.drift = pc.Gauge("reconciler_drift_objects", "Objects drifted and only reported (drift: report)",
                              ["source"], registry=r)
        self.restarts = pc.Counter("reconciler_container_restarts", "Restarts made by restart policies",
                                   registry=r)
        self.flapping = pc.Gauge("reconciler_containers_flapping",
                                 "Containers over the flap limit, left stopped", registry=r)
        self.managed = pc.Gauge("reconciler_containers_managed", "Containers the agent's sources own",
                                ["source"], registry=r)
        self.down = pc.Gauge("reconciler_containers_down",
                             "Desired containers that, after the last pass, do not run as their spec says "
                             "(the pass is 'degraded')", ["source"], registry=r)

    def render(self) -> tuple[bytes, str]:
        body: bytes = self._pc.generate_latest(self.registry)
        ctype: str = self._pc.CONTENT_TYPE_LATEST
        return body, ctype

    def set_error(self, source: str, reason: str | None) -> None:
        for r in ("fetch", "invalid"):
            self.source_error.labels(source, r).set(1 if r == reason else 0)

    def forget(self, source: str) -> None:
        for g in (self.source_suspended, self.last_applied, self.drift, self.managed, self.down):
            _remove(g, source)
        for r in ("fetch", "invalid"):
            _remove(self.source_error, source, r)


def _remove(metric: Any, *labels: str) -> None:
    try:
        metric.remove(*labels)
    except KeyError:
        pass
