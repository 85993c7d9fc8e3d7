"""The service's Prometheus metrics; names and labels are part of the HTTP contract.

Each service instance has its own `CollectorRegistry`, so tests can run several side by side.
Actor metrics are read from the actors' statistics at scrape time rather than counted twice.
Label values are bounded: route templates, methods, status codes, actor names; never ids.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import prometheus_client
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from miro_bridge.actors import ActorStatistics

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)


class _ActorCollector(Collector):
    """`actor_restarts_total` and `actor_mailbox_depth`, from the supervisor at scrape time."""

    def __init__(self, statistics: Callable[[], Sequence[ActorStatistics]]) -> None:
        self._statistics = statistics

    def collect(self) -> Iterable[Metric]:
        restarts = CounterMetricFamily(
            "actor_restarts", "Times each actor was restarted after a crash.", labels=["actor"]
        )
        depth = GaugeMetricFamily(
            "actor_mailbox_depth", "Messages waiting in each actor's mailbox.", labels=["actor"]
        )
        for stats in self._statistics():
            restarts.add_metric([stats.name], stats.restarts)
            depth.add_metric([stats.name], stats.mailbox_depth)
        yield restarts
        yield depth


class Metrics:
    """Every metric the service exports, registered in one registry."""

    def __init__(self, actor_statistics: Callable[[], Sequence[ActorStatistics]]) -> None:
        self.registry = prometheus_client.CollectorRegistry(auto_describe=True)
        self.http_request_duration = prometheus_client.Histogram(
            "http_server_request_duration_seconds",
            "Time to answer an HTTP request, by route template.",
            ["method", "route", "status_code"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.http_active_requests = prometheus_client.Gauge(
            "http_server_active_requests",
            "HTTP requests being answered now.",
            registry=self.registry,
        )
        self.registry.register(_ActorCollector(actor_statistics))

    def exposition(self) -> bytes:
        """The registry in Prometheus' text format."""
        return prometheus_client.generate_latest(self.registry)
