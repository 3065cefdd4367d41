"""The service's Prometheus metrics: per-process counters, store gauges read from the
shared database at scrape time (so every replica reports the same store)."""

from __future__ import annotations

import prometheus_client as prom
from prometheus_client.core import GaugeMetricFamily


class Metrics:
    def __init__(self, store):
        self.registry = prom.CollectorRegistry()
        self.requests = prom.Counter(
            "civis_service_requests",
            "HTTP requests",
            ["handler", "method", "code"],
            registry=self.registry,
        )
        self.hits = prom.Counter(
            "civis_service_result_hits", "Results served", registry=self.registry
        )
        self.misses = prom.Counter(
            "civis_service_result_misses", "Result reads answered 404", registry=self.registry
        )
        self.evictions = prom.Counter(
            "civis_service_evictions",
            "Results evicted by the retention budget",
            registry=self.registry,
        )
        self.uploads = prom.Counter(
            "civis_service_uploads", "Uploads by outcome", ["outcome"], registry=self.registry
        )
        self.registry.register(StoreCollector(store))

    def handoff_served(self, status: int) -> None:
        """Count one same-host handoff request like an HTTP read of a result."""
        self.requests.labels("Handoff", "SOCKET", str(status)).inc()
        if status == 200:
            self.hits.inc()
        elif status == 404:
            self.misses.inc()


class StoreCollector:
    def __init__(self, store):
        self.store = store

    def collect(self):
        stats = self.store.stats()
        yield GaugeMetricFamily(
            "civis_service_store_bytes", "Bytes of committed results", value=stats["bytes"]
        )
        yield GaugeMetricFamily(
            "civis_service_store_results", "Committed results", value=stats["results"]
        )
        yield GaugeMetricFamily(
            "civis_service_store_pinned_results", "Results with a pin", value=stats["pinned"]
        )
        yield GaugeMetricFamily(
            "civis_service_uploads_in_progress", "Uploads not committed yet", value=stats["uploads"]
        )
