"""Flags of `prepull-nodeimage-sync`: every upstream timer, with upstream's default (design §2).

`parse(argv, environ)` is a pure function: the entry point passes `sys.argv[1:]` and `os.environ`, tests pass
a list and a dict. `--help` documents every flag with its default.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from services.nodeimage_sync.logic import labelselector
from services.shared import leadership
from services.shared import settings as shared_settings

PROG = "prepull-nodeimage-sync"
DEFAULTS = shared_settings.CommonDefaults(grpc_address="[::]:9092", metrics_address=":8084", health_address=":8085")
PULLER_SERVICE_ACCOUNT = "system:serviceaccount:prepull-system:prepull-puller"
LEASE_NAME = "prepull-nodeimage-sync"


@dataclass(frozen=True)
class Settings:
    """Everything the service is configured with; times in seconds."""

    common: shared_settings.CommonSettings
    creation_delay: float = 30.0
    """A Node must have been Ready this long before it gets a NodeImage (upstream `--nodeimage-creation-delay`)."""
    response_timeout: float = 600.0
    """A tag the node has not answered for this long after `createdAt` fails (upstream's 10-min constant)."""
    workers: int = 3
    """NodeImages reconciled at once (upstream `--nodeimage-workers`); never the same one twice."""
    min_requeue: float = 3.0
    """Shorter waits become this plus up to `requeue_jitter` (upstream's 3 s)."""
    requeue_jitter: float = 2.0
    """Random spread added to short waits (upstream's 2 s)."""
    node_selector: str = ""
    """Manage only Nodes (and NodeImages) with these labels; empty: all. For sharding and isolated tests."""
    leader_election: leadership.LeaderElectionSettings = field(
        default_factory=lambda: leadership.LeaderElectionSettings(resource_name=LEASE_NAME)
    )
    """The `--leader-elect*` flags shared with the scheduler; the identity is also the Events' reporting instance."""
    puller_service_account: str = PULLER_SERVICE_ACCOUNT
    """The only identity allowed to report inventories (design §2)."""
    inventory_max_images: int = 4096
    """Images kept per node; a report with more is refused (bounds memory per node)."""
    inventory_max_names: int = 64
    """Repo tags plus repo digests kept per image; extra names are dropped."""
    auth: bool = True
    """Authenticate and authorize gRPC calls (design §2); off only for local experiments."""
    shutdown_grace: float = 5.0
    """Seconds calls in flight get to finish after SIGTERM."""
    own_write_wait: float = 10.0
    """Longest a NodeImage event waits for a worker still acting on that NodeImage before it is judged (ours)."""


def build_parser() -> shared_settings.FlagParser:
    """The flag parser, with the common flags and ours."""
    parser = shared_settings.service_parser(
        PROG, "Keeps one NodeImage per Node, maintains NodeImages, serves the image inventory.", DEFAULTS
    )
    duration = shared_settings.duration
    parser.add_argument("--creation-delay", type=duration, default="30s", help="Ready time before a NodeImage")
    parser.add_argument("--response-timeout", type=duration, default="10m", help="tag fails if the node is silent")
    parser.add_argument("--workers", type=_positive_int, default=3, help="NodeImages reconciled concurrently")
    parser.add_argument("--min-requeue", type=duration, default="3s", help="shortest requeue delay")
    parser.add_argument("--requeue-jitter", type=duration, default="2s", help="jitter added to short requeues")
    parser.add_argument(
        "--node-selector", type=_selector, default="", help="only Nodes with these labels (kubectl -l syntax)"
    )
    leadership.add_flags(parser, resource_name=LEASE_NAME)
    parser.add_argument(
        "--puller-service-account", default=PULLER_SERVICE_ACCOUNT, help="username allowed to report inventories"
    )
    parser.add_argument("--inventory-max-images", type=_positive_int, default=4096, help="images kept per node")
    parser.add_argument("--inventory-max-names", type=_positive_int, default=64, help="tags+digests kept per image")
    parser.add_argument(
        "--auth", action=argparse.BooleanOptionalAction, default=True, help="authenticate and authorize gRPC calls"
    )
    parser.add_argument("--shutdown-grace", type=duration, default="5s", help="grace for calls in flight on SIGTERM")
    parser.add_argument(
        "--own-write-wait", type=duration, default="10s", help="an event waits this long for a worker on its NodeImage"
    )
    return parser


def parse(argv: Sequence[str], environ: Mapping[str, str]) -> Settings:
    """Parse flags (and their environment fallbacks) into `Settings`.

    Raises:
        shared_settings.SettingsError: a flag is invalid; the message says which.
    """
    flags = build_parser().parse_flags(argv, environ)
    return Settings(
        common=shared_settings.CommonSettings.from_flags(flags),
        creation_delay=flags.creation_delay.total_seconds(),
        response_timeout=flags.response_timeout.total_seconds(),
        workers=flags.workers,
        min_requeue=flags.min_requeue.total_seconds(),
        requeue_jitter=flags.requeue_jitter.total_seconds(),
        node_selector=flags.node_selector,
        leader_election=leadership.from_flags(flags),
        puller_service_account=flags.puller_service_account,
        inventory_max_images=flags.inventory_max_images,
        inventory_max_names=flags.inventory_max_names,
        auth=flags.auth,
        shutdown_grace=flags.shutdown_grace.total_seconds(),
        own_write_wait=flags.own_write_wait.total_seconds(),
    )


def _selector(text: str) -> str:
    try:
        labelselector.parse(text)
    except labelselector.InvalidSelector as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid integer {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


__all__ = ["DEFAULTS", "PROG", "Settings", "build_parser", "parse"]
