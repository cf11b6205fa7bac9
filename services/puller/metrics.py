"""Prometheus metrics of the puller, on a registry the composition root owns (one per app instance).

A registry per instance lets tests run several pullers in one process and keeps `/metrics` to what the puller
promises: pulls by result and their duration by result, failures by reason (a low-cardinality error class),
bytes pulled, the wait for a pull slot, pulls in flight against the `--workers` limit, live workers,
reconciles, NodeImage status writes (the API traffic the puller causes besides its watch) and failed API calls.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from services.puller.logic.tagstate import PullTask

__all__ = ["PREFIX", "PullerMetrics"]

PREFIX = "prepull_puller"
DURATION_BUCKETS = (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800)
"""Pull durations range from "already present" (well under a second) to large images on slow links."""
WAIT_BUCKETS = (0.01, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800)
"""A slot is usually free at once; on a busy node a tag waits for whole pulls ahead of it."""


class PullerMetrics:
    """Every metric the puller exports; also a `workers.PullEvents` sink for finished pulls."""

    def __init__(self, registry: CollectorRegistry) -> None:
        """Create the metrics on `registry`."""
        self.registry = registry
        self.pulls = Counter(f"{PREFIX}_pulls_total", "Finished tag pulls by result", ["result"], registry=registry)
        self.pull_seconds = Histogram(
            f"{PREFIX}_pull_duration_seconds",
            "Time from a tag's first attempt to its success or final failure, by result",
            ["result"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.failures = Counter(
            f"{PREFIX}_pull_failures_total", "Tags failed after all attempts, by reason", ["reason"], registry=registry
        )
        self.pulled_bytes = Counter(
            f"{PREFIX}_pulled_bytes_total", "Bytes of images pulled (present ones count nothing)", registry=registry
        )
        self.slot_wait_seconds = Histogram(
            f"{PREFIX}_slot_wait_seconds",
            "Time an attempt waited for a pull slot (--workers)",
            buckets=WAIT_BUCKETS,
            registry=registry,
        )
        self.reconciles = Counter(f"{PREFIX}_reconciles_total", "NodeImage reconciles", registry=registry)
        self.api_errors = Counter(
            f"{PREFIX}_api_errors_total", "Failed apiserver requests by error class", ["error"], registry=registry
        )
        self.status_writes = Counter(f"{PREFIX}_status_writes_total", "NodeImage status writes", registry=registry)
        self.in_flight = Gauge(f"{PREFIX}_pulls_in_flight", "Pulls holding a worker slot", registry=registry)
        self.slots = Gauge(f"{PREFIX}_pull_slots", "Pulls allowed at once (--workers)", registry=registry)
        self.workers = Gauge(f"{PREFIX}_tag_workers", "Tag workers waiting, pulling or retrying", registry=registry)

    def watch(self, *, in_flight: Callable[[], int], slots: int, workers: Callable[[], int]) -> None:
        """Read the gauges from the live objects at scrape time."""
        self.in_flight.set_function(lambda: float(in_flight()))
        self.slots.set(slots)
        self.workers.set_function(lambda: float(workers()))

    def succeeded(self, task: PullTask, elapsed_seconds: float) -> None:
        """See `workers.PullEvents.succeeded`."""
        self.pulls.labels(result="succeeded").inc()
        self.pull_seconds.labels(result="succeeded").observe(elapsed_seconds)

    def failed(self, task: PullTask, message: str) -> None:
        """See `workers.PullEvents.failed`."""
        self.pulls.labels(result="failed").inc()

    def waited_for_slot(self, seconds: float) -> None:
        """See `workers.PullMeasurements.waited_for_slot`."""
        self.slot_wait_seconds.observe(seconds)

    def pulled(self, size_bytes: int) -> None:
        """See `workers.PullMeasurements.pulled`."""
        self.pulled_bytes.inc(max(size_bytes, 0))

    def failed_because(self, reason: str, elapsed_seconds: float) -> None:
        """See `workers.PullMeasurements.failed_because`."""
        self.failures.labels(reason=reason).inc()
        self.pull_seconds.labels(result="failed").observe(elapsed_seconds)

    def api_error(self, error: BaseException) -> None:
        """An apiserver request failed (counted by the error's class)."""
        self.api_errors.labels(error=type(error).__name__).inc()
