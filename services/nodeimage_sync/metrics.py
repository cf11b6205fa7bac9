"""Prometheus metrics of nodeimage_sync, on a registry the composition root owns (one per app instance).

A registry per instance (rather than the process-wide default) lets tests run the service several times in
one process, and keeps what `/metrics` shows limited to what this service promises.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

PREFIX = "prepull_nodeimage_sync"


class Metrics:
    """Every metric the service exports."""

    def __init__(self, registry: CollectorRegistry) -> None:
        """Create the metrics on `registry`."""
        self.registry = registry
        self.reconciles = Counter(
            f"{PREFIX}_reconciles_total", "NodeImage reconciles by outcome", ["result"], registry=registry
        )
        self.reconcile_seconds = Histogram(
            f"{PREFIX}_reconcile_duration_seconds", "Time spent reconciling one NodeImage", registry=registry
        )
        self.writes = Counter(
            f"{PREFIX}_nodeimage_writes_total", "NodeImage writes by kind", ["action"], registry=registry
        )
        self.api_errors = Counter(
            f"{PREFIX}_api_errors_total", "Failed apiserver requests by error class", ["error"], registry=registry
        )
        self.queue_depth = Gauge(f"{PREFIX}_queue_depth", "NodeImage names waiting for a worker", registry=registry)
        self.queue_adds = Counter(f"{PREFIX}_queue_adds_total", "Names added to the work queue", registry=registry)
        self.queue_retries = Counter(f"{PREFIX}_queue_retries_total", "Rate-limited requeues", registry=registry)
        self.queue_wait_seconds = Histogram(
            f"{PREFIX}_queue_wait_seconds", "Time a name waited in the queue", registry=registry
        )
        self.leader = Gauge(f"{PREFIX}_leader", "1 while this replica leads", registry=registry)
        self.owner_lookups = Counter(
            f"{PREFIX}_owner_lookups_total", "ImagePullJob GETs to confirm an owner the cache lacks", registry=registry
        )
        self.inventory_nodes = Gauge(f"{PREFIX}_inventory_nodes", "Nodes with a reported inventory", registry=registry)
        self.inventory_images = Gauge(f"{PREFIX}_inventory_images", "Images over all inventories", registry=registry)
        self.inventory_bytes = Gauge(
            f"{PREFIX}_inventory_memory_bytes", "Estimated memory held by the inventory", registry=registry
        )
        self.reports = Counter(
            f"{PREFIX}_inventory_reports_total", "Inventory reports by outcome", ["result"], registry=registry
        )


class QueueMetricsAdapter:
    """`workqueue.QueueMetrics` onto the Prometheus metrics (cheap: called under the queue's lock)."""

    def __init__(self, metrics: Metrics) -> None:
        """Report into `metrics`."""
        self._metrics = metrics

    def added(self) -> None:
        """A name was added."""
        self._metrics.queue_adds.inc()

    def depth(self, depth: int) -> None:
        """The ready queue's length changed."""
        self._metrics.queue_depth.set(depth)

    def waited(self, seconds: float) -> None:
        """A name was handed to a worker."""
        self._metrics.queue_wait_seconds.observe(seconds)

    def worked(self, seconds: float) -> None:
        """A worker finished a name (the reconcile histogram already measures this)."""

    def retried(self) -> None:
        """A name was requeued with back-off."""
        self._metrics.queue_retries.inc()
