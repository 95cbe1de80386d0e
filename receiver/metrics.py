"""Prometheus metrics of one receiver app, in a registry of its own (several apps can
live in one process, as in the tests)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

# pool statistics exported as gauges, from psycopg_pool's get_stats()
_POOL_GAUGES = {
    "pool_size": "Connections open (idle or in use).",
    "pool_available": "Connections idle in the pool.",
    "requests_waiting": "Deliveries waiting for a connection.",
    "pool_max": "Most connections the pool may open.",
}


class _PoolCollector(Collector):
    def __init__(self, stats: Callable[[], Mapping[str, int] | None]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[GaugeMetricFamily]:
        stats = self._stats()
        if stats is None:
            return
        for key, doc in _POOL_GAUGES.items():
            yield GaugeMetricFamily(f"optiqoflow_db_{key}", doc, value=stats.get(key, 0))


# figures of optiqoflow.health_metrics() (receiver.figures), exported as gauges; none has
# a label per tenant
_DATABASE_GAUGES = {
    "refused_waiting": (
        "optiqoflow_refused_waiting",
        "Refused deliveries not resolved yet (optiqoflow.refused_deliveries): fix, then replay.",
    ),
    "worst_lag_seconds": (
        "optiqoflow_worst_lag_seconds",
        "Worst lag (arrival minus the change's source time) among the deliveries applied in the "
        "last 5 minutes (at most the newest 10,000); 0 when none.",
    ),
    "log_partitions_ahead_days": (
        "optiqoflow_log_partitions_ahead_days",
        "Daily webhook_logs partitions after today (UTC); prune_logs keeps 3, so below 2 means "
        "pruning has not run.",
    ),
}


class _DatabaseCollector(Collector):
    def __init__(self, figures: Callable[[], Mapping[str, float] | None]) -> None:
        self._figures = figures

    def collect(self) -> Iterator[GaugeMetricFamily]:
        figures = self._figures()
        if figures is None:  # the database could not give them: left out, never an error
            return
        for key, (name, doc) in _DATABASE_GAUGES.items():
            if key in figures:
                yield GaugeMetricFamily(name, doc, value=figures[key])


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.deliveries = Counter(
            "optiqoflow_deliveries",
            "Deliveries by target table, operation and outcome.",
            ["table", "operation", "status"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "optiqoflow_delivery_duration_seconds",
            "Time from the request's arrival to the answer, by outcome.",
            ["status"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.signature_failures = Counter(
            "optiqoflow_signature_failures",
            "Requests refused with 401, by scheme and reason.",
            ["scheme", "reason"],
            registry=self.registry,
        )
        self.paths = Counter(
            "optiqoflow_delivery_paths",
            "Deliveries the database answered, by the call that answered: direct (the one "
            "apply_webhook call), grouped (queued for group commit, then applied with the "
            "deliveries queued beside it, or alone), worker (Citus: apply_tenant_webhook on "
            "the tenant's worker), coordinator (Citus: apply_webhook on the coordinator).",
            ["path"],
            registry=self.registry,
        )
        self.group_size = Histogram(
            "optiqoflow_group_commit_size",
            "Deliveries applied by each call from the group-commit queue (OPTIQO_GROUP_COMMIT).",
            buckets=(1, 2, 4, 8, 16, 32, 64),  # OPTIQO_GROUP_COMMIT is at most 64
            registry=self.registry,
        )
        self.groups_ungrouped = Counter(
            "optiqoflow_group_commit_ungrouped",
            "Groups that could not be applied as one (refused by the database as a whole, no "
            "connection): each of their deliveries was then applied on its own.",
            registry=self.registry,
        )
        self.unauthenticated_bytes = Gauge(
            "optiqoflow_unauthenticated_body_bytes",
            "Bytes reserved by request bodies over 1 MiB, or chunked, being received before "
            "their signature is checked (at most OPTIQO_UNAUTHENTICATED_BYTES).",
            registry=self.registry,
        )
        self.unauthenticated_small = Gauge(
            "optiqoflow_unauthenticated_small_bodies",
            "Request bodies of 1 MiB or less being received before their signature is "
            "checked (at most OPTIQO_UNAUTHENTICATED_SMALL_BODIES).",
            registry=self.registry,
        )
        self._path_counts: dict[str, Counter] = {}
        self._pool_stats: Callable[[], Mapping[str, int]] | None = None
        self.registry.register(_PoolCollector(self._current_pool_stats))
        self._database_figures: Callable[[], Mapping[str, float] | None] = lambda: None
        self.registry.register(_DatabaseCollector(lambda: self._database_figures()))
        # the labelled children, looked up once (labels() takes a lock and checks names)
        self._delivery_counts: dict[tuple[str, str, str], Counter] = {}
        self._durations: dict[str, Histogram] = {}

    def delivered(self, table: str, operation: str, status: str, seconds: float) -> None:
        """Count one delivery and observe its duration."""
        key = (table, operation, status)
        count = self._delivery_counts.get(key)
        if count is None:
            count = self._delivery_counts[key] = self.deliveries.labels(*key)
        count.inc()
        duration = self._durations.get(status)
        if duration is None:
            duration = self._durations[status] = self.duration.labels(status)
        duration.observe(seconds)

    def routed(self, path: str) -> None:
        """Count the call that answered one delivery."""
        count = self._path_counts.get(path)
        if count is None:
            count = self._path_counts[path] = self.paths.labels(path)
        count.inc()

    def watch_admission(self, bytes_held: Callable[[], float], small: Callable[[], float]) -> None:
        """Export what receiver.admission holds."""
        self.unauthenticated_bytes.set_function(bytes_held)
        self.unauthenticated_small.set_function(small)

    def watch_pool(self, stats: Callable[[], Mapping[str, int]] | None) -> None:
        """Export the pool's statistics (None: the pool is closed)."""
        self._pool_stats = stats

    def watch_database(self, figures: Callable[[], Mapping[str, float] | None]) -> None:
        """Export the database's figures (receiver.figures), when it has them."""
        self._database_figures = figures

    def _current_pool_stats(self) -> Mapping[str, int] | None:
        return self._pool_stats() if self._pool_stats is not None else None
