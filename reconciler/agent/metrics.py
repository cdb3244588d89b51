"""The agent's Prometheus metrics: values kept here, exposed through prometheus_client.

The agent updates its metrics on every pass, but they are read only when something scrapes
`/metrics`. prometheus_client's own metric objects would have to be made as the agent starts,
and importing it maps its exposition's servers and clients (wsgiref, http.server,
urllib.request, ...): ~2 MiB at rest that an agent nobody scrapes never uses (#21). So the
values live in the small families below (the same `labels(...).inc/set/observe` and `remove`
calls), and the first scrape imports prometheus_client and registers a custom collector
(prometheus_client's documented way to expose values kept elsewhere) that turns them into its
metric families: the text is the one its own Counter, Gauge and Histogram write, `_created`
samples included (tests/agent/test_metrics.py compares the two).
"""

from __future__ import annotations

import threading
import time
from typing import Any

__all__ = ["Metrics"]

_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class _Child:
    """One label set's value (a histogram's: its bucket counts and sum); when it was made."""

    __slots__ = ("_family", "buckets", "created", "sum", "value")

    def __init__(self, family: _Family) -> None:
        self._family = family
        self.value = 0.0
        self.created = time.time()
        self.sum = 0.0
        self.buckets = [0] * len(family.buckets)

    def inc(self, amount: float = 1.0) -> None:
        with self._family.lock:
            self.value += amount

    def set(self, value: float) -> None:
        with self._family.lock:
            self.value = float(value)

    def observe(self, amount: float) -> None:
        with self._family.lock:
            self.value += 1             # the count
            self.sum += amount
            for i, bound in enumerate(self._family.buckets):
                if amount <= bound:
                    self.buckets[i] += 1
                    break


class _Family:
    """A counter, gauge or histogram and its children by label values (prometheus_client's
    calls: `labels(*values)`, `remove(*values)`, and `inc`/`set` when it has no labels)."""

    def __init__(self, kind: str, name: str, doc: str, labelnames: tuple[str, ...] = (),
                 buckets: tuple[float, ...] = ()) -> None:
        self.kind, self.name, self.doc, self.labelnames, self.buckets = kind, name, doc, labelnames, buckets
        self.lock = threading.Lock()
        self.children: dict[tuple[str, ...], _Child] = {}
        if not labelnames:
            self.children[()] = _Child(self)

    def labels(self, *values: str) -> _Child:
        if len(values) != len(self.labelnames):
            raise ValueError(f"{self.name}: {len(self.labelnames)} label values wanted, {len(values)} given")
        key = tuple(str(v) for v in values)
        with self.lock:
            child = self.children.get(key)
            if child is None:
                child = self.children[key] = _Child(self)
            return child

    def remove(self, *values: str) -> None:
        with self.lock:
            del self.children[tuple(str(v) for v in values)]

    def inc(self, amount: float = 1.0) -> None:
        self.labels().inc(amount)

    def set(self, value: float) -> None:
        self.labels().set(value)

    def snapshot(self) -> list[tuple[tuple[str, ...], float, float, float, list[int]]]:
        with self.lock:
            return [(k, c.value, c.created, c.sum, list(c.buckets)) for k, c in self.children.items()]


class Metrics:
    """Collectors; label `source` is the source's name (never a URL or a path with secrets)."""

    def __init__(self) -> None:
        self.passes = _Family("counter", "reconciler_passes", "Reconcile passes by source and result",
                              ("source", "result"))
        self.pass_duration = _Family("histogram", "reconciler_pass_duration_seconds", "Duration of a reconcile pass",
                                     ("source",), buckets=_BUCKETS)
        self.source_error = _Family("gauge", "reconciler_source_error",
                                    "1 while the source's newest revision cannot be fetched or loaded",
                                    ("source", "reason"))
        self.source_suspended = _Family("gauge", "reconciler_source_suspended", "1 while the source is suspended",
                                        ("source",))
        self.last_applied = _Family("gauge", "reconciler_last_applied_timestamp_seconds",
                                    "When the source's revision last converged", ("source",))
        self.drift = _Family("gauge", "reconciler_drift_objects", "Objects drifted and only reported (drift: report)",
                             ("source",))
        self.restarts = _Family("counter", "reconciler_container_restarts", "Restarts made by restart policies")
        self.flapping = _Family("gauge", "reconciler_containers_flapping",
                                "Containers over the flap limit, left stopped")
        self.managed = _Family("gauge", "reconciler_containers_managed", "Containers the agent's sources own",
                               ("source",))
        self.down = _Family("gauge", "reconciler_containers_down",
                            "Desired containers that, after the last pass, do not run as their spec says "
                            "(the pass is 'degraded')", ("source",))
        self.families = (self.passes, self.pass_duration, self.source_error, self.source_suspended,
                         self.last_applied, self.drift, self.restarts, self.flapping, self.managed, self.down)
        self._registry: Any = None
        self._opening = threading.Lock()

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type (prometheus_client loaded at the first call)."""
        import prometheus_client as pc

        with self._opening:
            if self._registry is None:
                registry = pc.CollectorRegistry(auto_describe=False)
                registry.register(_Collector(self.families))
                self._registry = registry
        body: bytes = pc.generate_latest(self._registry)
        ctype: str = pc.CONTENT_TYPE_LATEST
        return body, ctype

    def set_error(self, source: str, reason: str | None) -> None:
        for r in ("fetch", "invalid"):
            self.source_error.labels(source, r).set(1 if r == reason else 0)

    def forget(self, source: str) -> None:
        for g in (self.source_suspended, self.last_applied, self.drift, self.managed, self.down):
            _remove(g, source)
        for r in ("fetch", "invalid"):
            _remove(self.source_error, source, r)


class _Collector:
    """prometheus_client's custom collector over the families: their metric families at each
    scrape, as its own metric objects would write them."""

    def __init__(self, families: tuple[_Family, ...]) -> None:
        self.families = families

    def collect(self) -> Any:
        from prometheus_client.metrics_core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )
        from prometheus_client.samples import Sample
        from prometheus_client.utils import floatToGoString

        for f in self.families:
            names = list(f.labelnames)
            if f.kind == "counter":
                counter = CounterMetricFamily(f.name, f.doc, labels=names)
                for key, value, created, _, _ in f.snapshot():
                    counter.add_metric(list(key), value, created=created)
                yield counter
            elif f.kind == "gauge":
                gauge = GaugeMetricFamily(f.name, f.doc, labels=names)
                for key, value, _, _, _ in f.snapshot():
                    gauge.add_metric(list(key), value)
                yield gauge
            else:
                histogram = HistogramMetricFamily(f.name, f.doc, labels=names)
                for key, count, created, total, counts in f.snapshot():
                    cumulative: list[tuple[str, float]] = []
                    running = 0
                    for bound, n in zip(f.buckets, counts, strict=True):
                        running += n
                        cumulative.append((floatToGoString(bound), running))  # type: ignore[no-untyped-call]
                    cumulative.append(("+Inf", count))
                    histogram.add_metric(list(key), cumulative, total)
                    histogram.samples.append(Sample(f.name + "_created", dict(zip(names, key, strict=True)), created))
                yield histogram


def _remove(metric: _Family, *labels: str) -> None:
    try:
        metric.remove(*labels)
    except KeyError:
        pass
