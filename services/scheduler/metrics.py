"""The scheduler's Prometheus metrics, on a registry per instance (several instances share a test process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["ControllerQueueMetrics", "SchedulerMetrics"]

WAIT_BUCKETS = (0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60)
"""A key normally waits milliseconds; seconds mean the workers cannot keep up."""


class SchedulerMetrics:
    """Counters that show what the scheduler does; reconciles per job make wake-up storms visible."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.reconciles = Counter(
            "prepull_scheduler_reconciles",
            "Reconciles run, by controller.",
            ["controller"],
            registry=self.registry,
        )
        self.reconcile_errors = Counter(
            "prepull_scheduler_reconcile_errors",
            "Reconciles that failed and were retried, by controller.",
            ["controller"],
            registry=self.registry,
        )
        self.tag_entries_written = Counter(
            "prepull_scheduler_tag_entries_written",
            "NodeImage tag entries created, joined or updated for jobs.",
            registry=self.registry,
        )
        self.credentials_requests = Counter(
            "prepull_scheduler_credentials_requests",
            "GetPullCredentials answers, by outcome.",
            ["outcome"],
            registry=self.registry,
        )
        self.api_errors = Counter(
            "prepull_scheduler_api_errors",
            "Reconciles that failed on an apiserver request, by controller and error class.",
            ["controller", "error"],
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "prepull_scheduler_queue_depth",
            "Job keys waiting for a worker, by controller.",
            ["controller"],
            registry=self.registry,
        )
        self.queue_wait_seconds = Histogram(
            "prepull_scheduler_queue_wait_seconds",
            "Time a job key waited in the queue before a worker took it, by controller.",
            ["controller"],
            buckets=WAIT_BUCKETS,
            registry=self.registry,
        )
        self.leader = Gauge("prepull_scheduler_leader", "1 while this replica leads.", registry=self.registry)


class ControllerQueueMetrics:
    """`workqueue.QueueMetrics` of one controller's queue onto `SchedulerMetrics` (cheap: runs under its lock)."""

    def __init__(self, metrics: SchedulerMetrics, controller: str) -> None:
        self._depth = metrics.queue_depth.labels(controller)
        self._wait = metrics.queue_wait_seconds.labels(controller)

    def added(self) -> None:
        """Counted by the reconciles it leads to."""

    def depth(self, depth: int) -> None:
        """The queue's length changed."""
        self._depth.set(depth)

    def waited(self, seconds: float) -> None:
        """A key was handed to a worker."""
        self._wait.observe(seconds)

    def worked(self, seconds: float) -> None:
        """Not exported."""

    def retried(self) -> None:
        """Counted as a reconcile error."""
