"""The service's Prometheus metrics; names and labels are part of the HTTP contract.

Each service instance has its own `CollectorRegistry`, so tests can run several side by side.
Actor metrics are read from the actors' statistics at scrape time rather than counted twice.
Label values are bounded: route templates, methods, status codes, actor names; never ids.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

import prometheus_client
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

#: The kinds of job the queue runs (the `kind` label of the job metrics).
JOB_KINDS = ("batch", "cards", "ops", "shapes", "sync", "webhook")
#: What became of a webhook event (the `outcome` label of `webhook_events_total`).
WEBHOOK_OUTCOMES = ("enqueued", "coalesced", "duplicate", "limited", "ignored", "rejected")
#: How a token refresh ended (the `outcome` label of `token_refreshes_total`): `rejected` is
#: Miro refusing the refresh token (the user must connect again), `failed` anything else.
TOKEN_REFRESH_OUTCOMES = ("refreshed", "rejected", "failed")
#: How a request proxied to the legacy service ended (the `outcome` label).
LEGACY_PROXY_OUTCOMES = ("forwarded", "upstream_error", "timeout", "client_closed")
#: Writes per transaction: powers of two up to the Store's largest group.
_GROUP_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)


class ActorCounts(Protocol):
    """What the metrics read of an actor at scrape time (`actors.ActorStatistics` has it)."""

    @property
    def name(self) -> str: ...
    @property
    def restarts(self) -> int: ...
    @property
    def mailbox_depth(self) -> int: ...


class _ActorCollector(Collector):
    """`actor_restarts_total` and `actor_mailbox_depth`, from the supervisor at scrape time."""

    def __init__(self, statistics: Callable[[], Sequence[ActorCounts]]) -> None:
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

    def __init__(self) -> None:
        self.registry = prometheus_client.CollectorRegistry(auto_describe=True)
        self.http_request_duration = prometheus_client.Histogram(
            "http_server_request_duration_seconds",
            "Time to answer an HTTP request, by route template.",
            ["method", "route", "status_code"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        #: HTTP requests being answered now: counted by the edge (in Trio's thread) as a
        #: plain number, which the gauge reads when scraped.
        self.requests_in_flight = 0
        self.http_active_requests = prometheus_client.Gauge(
            "http_server_active_requests",
            "HTTP requests being answered now.",
            registry=self.registry,
        )
        self.http_active_requests.set_function(lambda: self.requests_in_flight)
        self.miro_requests = prometheus_client.Counter(
            "miro_api_requests",
            "Requests sent to Miro's REST API, by endpoint template and status.",
            ["endpoint", "status_code"],
            registry=self.registry,
        )
        self.miro_request_duration = prometheus_client.Histogram(
            "miro_api_request_duration_seconds",
            "Time Miro took to answer, by endpoint template.",
            ["endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.miro_credits_remaining = prometheus_client.Gauge(
            "miro_api_credits_remaining",
            "Credits left in the current window, for the user with the fewest.",
            registry=self.registry,
        )
        self.miro_rate_limited = prometheus_client.Counter(
            "miro_api_rate_limited",
            "429 answers from Miro.",
            registry=self.registry,
        )
        self.jobs_enqueued = prometheus_client.Counter(
            "jobs_enqueued", "Jobs accepted, by kind.", ["kind"], registry=self.registry
        )
        self.jobs_completed = prometheus_client.Counter(
            "jobs_completed",
            "Jobs finished, by kind and outcome (done, failed, partial).",
            ["kind", "outcome"],
            registry=self.registry,
        )
        self.job_attempts = prometheus_client.Counter(
            "job_attempts", "Operation attempts, by job kind.", ["kind"], registry=self.registry
        )
        self.job_reconciled_items = prometheus_client.Counter(
            "job_reconciled_items",
            "Items found already created at Miro by a create whose answer was lost, and "
            "adopted instead of being created again, by job kind.",
            ["kind"],
            registry=self.registry,
        )
        self.jobs_dead_lettered = prometheus_client.Counter(
            "jobs_dead_lettered",
            "Operations given up on after their last attempt, by job kind.",
            ["kind"],
            registry=self.registry,
        )
        self.job_queue_depth = prometheus_client.Gauge(
            "job_queue_depth", "Operations not finished yet.", registry=self.registry
        )
        self.job_duration = prometheus_client.Histogram(
            "job_duration_seconds",
            "From enqueue to the last operation's end, by job kind.",
            ["kind"],
            buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
            registry=self.registry,
        )
        self.store_commit_group_size = prometheus_client.Histogram(
            "store_commit_group_size",
            "Writes committed together in one transaction (group commit), per transaction.",
            buckets=_GROUP_BUCKETS,
            registry=self.registry,
        )
        self.webhook_events = prometheus_client.Counter(
            "webhook_events",
            "Webhook events received, by outcome (enqueued, coalesced, duplicate, limited, "
            "ignored, rejected).",
            ["outcome"],
            registry=self.registry,
        )
        self.client_logs_ingested = prometheus_client.Counter(
            "client_logs_ingested",
            "Log entries received from the Node client.",
            registry=self.registry,
        )
        self.board_cache_requests = prometheus_client.Counter(
            "board_cache_requests",
            "Board reads, by whether the cache could answer.",
            ["result"],
            registry=self.registry,
        )
        self.legacy_proxy_requests = prometheus_client.Counter(
            "legacy_proxy_requests",
            "Requests proxied to the legacy service, by how they ended (forwarded: the "
            "upstream's answer was relayed whole, whatever its status).",
            ["outcome"],
            registry=self.registry,
        )
        self.token_refreshes = prometheus_client.Counter(
            "token_refreshes",
            "Refreshes of users' Miro tokens, by outcome (refreshed, rejected, failed).",
            ["outcome"],
            registry=self.registry,
        )

        # Bounded label values start at zero, so that every series exists from the start.
        for kind in JOB_KINDS:
            self.jobs_enqueued.labels(kind)
            self.job_attempts.labels(kind)
            self.jobs_dead_lettered.labels(kind)
            self.job_reconciled_items.labels(kind)
            for outcome in ("done", "failed", "partial"):
                self.jobs_completed.labels(kind, outcome)
        for result in ("hit", "miss", "stale"):
            self.board_cache_requests.labels(result)
        for outcome in WEBHOOK_OUTCOMES:
            self.webhook_events.labels(outcome)
        for outcome in LEGACY_PROXY_OUTCOMES:
            self.legacy_proxy_requests.labels(outcome)
        for outcome in TOKEN_REFRESH_OUTCOMES:
            self.token_refreshes.labels(outcome)

    def watch_actors(self, statistics: Callable[[], Sequence[ActorCounts]]) -> None:
        """Export `actor_restarts_total` and `actor_mailbox_depth` from `statistics()`."""
        self.registry.register(_ActorCollector(statistics))

    def exposition(self) -> bytes:
        """The registry in Prometheus' text format."""
        return prometheus_client.generate_latest(self.registry)
