"""The scheduler's Prometheus metrics, on a registry per instance (several instances share a test process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

__all__ = ["SchedulerMetrics"]


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
        self.leader = Gauge("prepull_scheduler_leader", "1 while this replica leads.", registry=self.registry)
