"""The scheduler's flags: the common ones (design §2) plus every timer of upstream §2 and §6.3 with its default.

Tests shorten timers by building `SchedulerSettings` directly; operators tune them with flags.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from services.scheduler.logic.tagpolicy import TagPolicySettings
from services.shared import leadership
from services.shared import settings as common

__all__ = ["SchedulerSettings", "parse"]

DEFAULT_PULLER_USERNAME = "system:serviceaccount:prepull-system:prepull-puller"
DEFAULT_JOBS_AUDIENCE = "prepull.io/jobs"
LEASE_NAME = "prepull-scheduler"


@dataclass(frozen=True)
class SchedulerSettings:
    """Everything the scheduler's composition root needs."""

    kubeconfig: str = ""
    grpc_address: str = "[::]:9090"
    metrics_address: str = ":8080"
    health_address: str = ":8081"
    log_level: str = "info"
    watch_namespace: str = ""
    """Only jobs (and pods) of this namespace; empty: all namespaces (tests use one namespace each)."""
    job_workers: int = 3
    """`--imagepulljob-workers` (upstream default 3)."""
    list_job_workers: int = 3
    tag_policy: TagPolicySettings = field(default_factory=TagPolicySettings)
    nodeimage_expectation_requeue_seconds: float = 5.0
    """Fallback requeue while our own last write (a NodeImage, a job) is not yet in the cache (upstream #1528: 5 s)."""
    expectation_timeout_seconds: float = 300.0
    """`--expectation-timeout`: after this long an unseen write is no longer waited for (upstream 5 m)."""
    cache_sync_timeout_seconds: float = 120.0
    """`--cache-sync-timeout`: give up (exit, to be restarted) when the caches have not filled by then
    (controller-runtime's CacheSyncTimeout: 2 m). Clusters with very many tag entries may need longer."""
    nodeimage_write_workers: int = 16
    """`--nodeimage-write-workers`: tag-entry writes in flight at once, over all jobs (1: one after another)."""
    minimum_deadline_requeue_seconds: float = 1.0
    max_pulls_in_flight: int = 0
    """Cluster-wide cap on nodes pulling for any job; 0: no cap."""
    max_pulls_in_flight_per_registry: int = 0
    """Cap on nodes pulling from one registry; 0: no cap."""
    puller_username: str = DEFAULT_PULLER_USERNAME
    jobs_audience: str = DEFAULT_JOBS_AUDIENCE
    """Token audience callers of the `Jobs` service present (checked by TokenReview)."""
    leader_election: leadership.LeaderElectionSettings = field(
        default_factory=lambda: leadership.LeaderElectionSettings(resource_name=LEASE_NAME)
    )
    """The `--leader-elect*` flags shared with nodeimage_sync; the identity is also the Events' reporting instance."""


def _seconds(text: str) -> float:
    return common.duration(text).total_seconds()


def _parser() -> common.FlagParser:
    parser = common.service_parser(
        "prepull-scheduler",
        "ImagePullJob and ImageListPullJob controllers, the Credentials and Jobs gRPC services.",
    )
    add = parser.add_argument
    add("--watch-namespace", default="", help="only reconcile jobs of this namespace; empty: all namespaces")
    add("--imagepulljob-workers", type=int, default=3, help="ImagePullJobs reconciled at once")
    add("--imagelistpulljob-workers", type=int, default=3, help="ImageListPullJobs reconciled at once")
    add(
        "--default-ttlseconds-for-always-nodeimage",
        type=int,
        default=300,
        help="seconds added to the TTL of every tag entry an Always job writes (0..2678400)",
    )
    add("--always-ttl-jitter", type=_seconds, default="300s", help="random extra TTL [0, this) for Always tags")
    add(
        "--never-repull-interval",
        type=_seconds,
        default="24h",
        help="a Never job's node re-pulls this long after finishing (the daily re-pull)",
    )
    add("--never-repull-jitter", type=_seconds, default="10m", help="the re-pull interval varies by +/- this")
    add("--never-min-deadline", type=_seconds, default="30m", help="minimum per-node deadline of Never tags")
    add(
        "--nodeimage-expectation-requeue",
        type=_seconds,
        default="5s",
        help="requeue delay while our own last write (NodeImage or job) is not yet seen in the cache",
    )
    add("--expectation-timeout", type=_seconds, default="5m", help="stop waiting for an unseen write after this")
    add("--cache-sync-timeout", type=_seconds, default="2m", help="exit when the caches have not filled by then")
    add(
        "--nodeimage-write-workers",
        type=int,
        default=16,
        help="NodeImage tag-entry writes in flight at once, over all jobs (1: one after another)",
    )
    add("--minimum-deadline-requeue", type=_seconds, default="1s", help="shortest requeue for a job deadline")
    add("--max-pulls-in-flight", type=int, default=0, help="cluster-wide cap on nodes pulling at once; 0: none")
    add(
        "--max-pulls-in-flight-per-registry",
        type=int,
        default=0,
        help="cap on nodes pulling from one registry at once; 0: none",
    )
    add(
        "--puller-service-account",
        default=DEFAULT_PULLER_USERNAME,
        help="username of the puller ServiceAccount, the only caller of Credentials",
    )
    add("--jobs-audience", default=DEFAULT_JOBS_AUDIENCE, help="token audience required of Jobs service callers")
    leadership.add_flags(parser, resource_name=LEASE_NAME)
    return parser


def parse(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> SchedulerSettings:
    """Settings from command-line flags (and the environment variables the common flags read)."""
    flags = _parser().parse_flags(argv, os.environ if environ is None else environ)
    base = common.CommonSettings.from_flags(flags)
    if flags.nodeimage_write_workers < 1:
        raise common.SettingsError("prepull-scheduler: --nodeimage-write-workers must be at least 1")
    if not 0 <= flags.default_ttlseconds_for_always_nodeimage <= 2678400:
        raise common.SettingsError(
            "prepull-scheduler: --default-ttlseconds-for-always-nodeimage must be between 0 and 2678400"
        )
    return SchedulerSettings(
        kubeconfig=base.kubeconfig,
        grpc_address=base.grpc_address,
        metrics_address=base.metrics_address,
        health_address=base.health_address,
        log_level=base.log_level,
        watch_namespace=flags.watch_namespace,
        job_workers=flags.imagepulljob_workers,
        list_job_workers=flags.imagelistpulljob_workers,
        tag_policy=TagPolicySettings(
            always_ttl_extra_seconds=flags.default_ttlseconds_for_always_nodeimage,
            always_ttl_jitter_seconds=int(flags.always_ttl_jitter),
            never_repull_interval_seconds=int(flags.never_repull_interval),
            never_repull_jitter_seconds=int(flags.never_repull_jitter),
            never_min_deadline_seconds=int(flags.never_min_deadline),
        ),
        nodeimage_expectation_requeue_seconds=flags.nodeimage_expectation_requeue,
        expectation_timeout_seconds=flags.expectation_timeout,
        cache_sync_timeout_seconds=flags.cache_sync_timeout,
        nodeimage_write_workers=flags.nodeimage_write_workers,
        minimum_deadline_requeue_seconds=flags.minimum_deadline_requeue,
        max_pulls_in_flight=flags.max_pulls_in_flight,
        max_pulls_in_flight_per_registry=flags.max_pulls_in_flight_per_registry,
        puller_username=flags.puller_service_account,
        jobs_audience=flags.jobs_audience,
        leader_election=leadership.from_flags(flags),
    )
