"""Prometheus metrics (`/metrics`): counts read from the model at scrape time, durations observed
as the controller's changes arrive, the router's counters.

One registry per dashboard (not the process-wide default), so two controllers in one process
(tests) never share series.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from jumpstarter_controller.dashboard._lab import STATUS_NAMES, Lab

__all__ = ["Metrics"]

WAIT_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600)
HOOK_BUCKETS = (0.1, 0.5, 1, 5, 10, 30, 60, 300, 900)


class _Counts(Collector):
    def __init__(self, lab: Lab, router: Any) -> None:
        self._lab = lab
        self._router = router

    def collect(self) -> Iterable[Any]:
        statuses, states = self._lab.counts()
        exporters = GaugeMetricFamily("jumpstarter_exporters", "Exporters by status", labels=["status"])
        for status in sorted({*STATUS_NAMES.values(), *statuses}):
            exporters.add_metric([status], statuses.get(status, 0))
        yield exporters
        leases = GaugeMetricFamily("jumpstarter_leases", "Leases by state (ended: kept in the database)",
                                   labels=["state"])  # fmt: skip
        for state, count in sorted(states.items()):
            leases.add_metric([state], count)
        yield leases
        router = self._router
        if router is not None:
            yield GaugeMetricFamily("jumpstarter_router_active_pairs", "Client-exporter streams paired now",
                                    value=router.active_pairs)  # fmt: skip
            yield GaugeMetricFamily("jumpstarter_router_waiting_halves", "Streams waiting for their other end",
                                    value=router.waiting_halves)  # fmt: skip
            yield CounterMetricFamily("jumpstarter_router_pairs", "Streams paired since start",
                                      value=router.total_pairs)  # fmt: skip
            yield CounterMetricFamily("jumpstarter_router_refused", "Streams refused since start",
                                      value=router.refused)  # fmt: skip
            relayed = CounterMetricFamily("jumpstarter_router_bytes", "Bytes relayed", labels=["direction"])
            relayed.add_metric(["from_first"], router.bytes_from_first)
            relayed.add_metric(["from_second"], router.bytes_from_second)
            yield relayed


class Metrics:
    def __init__(self, lab: Lab, router: Any) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(_Counts(lab, router))
        self._ready = Histogram("jumpstarter_lease_request_to_ready_seconds",
                                "From a lease's request to its exporter being assigned (Ready)",
                                buckets=WAIT_BUCKETS, registry=self.registry)  # fmt: skip
        self._wait = Histogram("jumpstarter_lease_queue_wait_seconds",
                               "Time a lease waited in line (after its begin time, if scheduled)",
                               buckets=WAIT_BUCKETS, registry=self.registry)  # fmt: skip
        self._hook = Histogram("jumpstarter_hook_duration_seconds", "Exporter hook runs, as reported by its status",
                               ["hook"], buckets=HOOK_BUCKETS, registry=self.registry)  # fmt: skip
        self._failures = Counter("jumpstarter_hook_failures", "Exporter hook runs that failed", ["hook"],
                                 registry=self.registry)  # fmt: skip
        lab.observers.append(self._observe)

    def _observe(self, kind: str, value: float, labels: dict[str, str]) -> None:
        if kind == "request_to_ready":
            self._ready.observe(value)
        elif kind == "queue_wait":
            self._wait.observe(value)
        elif kind == "hook_seconds":
            self._hook.labels(**labels).observe(value)
        elif kind == "hook_failure":
            self._failures.labels(**labels).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
