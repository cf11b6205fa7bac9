"""The leader-election flags, settings and elector that every leader-elected service shares.

scheduler and nodeimage_sync both run two replicas and reconcile only while holding a Lease
(`kube.leaderelection`). They take the same flags, named as kube-controller-manager and kube-scheduler name
them, so operators write what they already know:

| flag | default |
|---|---|
| `--leader-elect[=BOOL]` | true; `--leader-elect=false` runs without election (one replica only) |
| `--leader-elect-lease-duration` | 15s |
| `--leader-elect-renew-deadline` | 10s |
| `--leader-elect-retry-period` | 2s |
| `--leader-elect-resource-namespace` | `$POD_NAMESPACE`, else `prepull-system` |
| `--leader-elect-resource-name` | the service's Lease (`prepull-scheduler`, `prepull-nodeimage-sync`) |
| `--leader-elect-identity` | `$POD_NAME`, else the host name plus a random suffix |

The durations are client-go's defaults. Two departures from upstream. `--leader-elect-resource-lock` is
absent, because a Lease is the only lock Kubernetes still supports. `--leader-elect-identity` is added:
upstream always uses the host name plus a UUID, which inside a Pod is the Pod name; reading `POD_NAME` from the
downward API gives the same answer and states it. The flag also lets tests name their candidates.

A service adds the group with `add_flags(parser, resource_name=...)`, reads it back with `from_flags(flags)`
into its own settings, and builds its elector with `build_elector(...)`: None when election is off, so the
service starts leading at once.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field

from services.shared import settings as shared_settings
from services.shared.kube import leaderelection, objects

DEFAULT_NAMESPACE = "prepull-system"
_TRUE = frozenset({"1", "t", "true", "yes"})
_FALSE = frozenset({"0", "f", "false", "no"})


@dataclass(frozen=True)
class LeaderElectionSettings:
    """Whether to elect, which Lease, who this candidate is, and the timing."""

    resource_name: str
    """The Lease's name: one per service, shared by that service's replicas."""

    enabled: bool = True
    """False: lead from the start without a Lease (safe only with a single replica)."""

    resource_namespace: str = DEFAULT_NAMESPACE
    """Namespace of the Lease; normally the service's own."""

    identity: str = field(default_factory=leaderelection.default_identity)
    """This candidate, unique among the replicas (the Pod name in a cluster)."""

    timing: leaderelection.ElectionSettings = field(default_factory=leaderelection.ElectionSettings)
    """Lease duration, renew deadline and retry period (validated there)."""


def add_flags(parser: shared_settings.FlagParser, *, resource_name: str) -> None:
    """Add the `--leader-elect*` flags; `resource_name` is this service's default Lease name."""
    timing = leaderelection.ElectionSettings()
    parser.add_argument(
        "--leader-elect",
        type=_boolean,
        nargs="?",
        const=True,
        default=True,
        metavar="BOOL",
        help="reconcile only while holding the Lease; --leader-elect=false for a single replica without one",
    )
    duration = shared_settings.duration
    parser.add_argument(
        "--leader-elect-lease-duration",
        type=duration,
        metavar="DURATION",
        default=_seconds_text(timing.lease_duration),
        help="how long standbys wait after the leader's last renewal before taking the Lease",
    )
    parser.add_argument(
        "--leader-elect-renew-deadline",
        type=duration,
        metavar="DURATION",
        default=_seconds_text(timing.renew_deadline),
        help="the leader steps down after failing to renew for this long (below the lease duration)",
    )
    parser.add_argument(
        "--leader-elect-retry-period",
        type=duration,
        metavar="DURATION",
        default=_seconds_text(timing.retry_period),
        help="pause between attempts to acquire or renew the Lease",
    )
    parser.add_env_argument(
        "--leader-elect-resource-namespace",
        env="POD_NAMESPACE",
        default=DEFAULT_NAMESPACE,
        metavar="NAMESPACE",
        help="namespace of the Lease",
    )
    parser.add_argument("--leader-elect-resource-name", default=resource_name, metavar="NAME", help="name of the Lease")
    parser.add_env_argument(
        "--leader-elect-identity",
        env="POD_NAME",
        default=None,
        metavar="IDENTITY",
        help="this candidate's name in the Lease; unset: the host name and a random suffix",
    )


def from_flags(flags: argparse.Namespace) -> LeaderElectionSettings:
    """The settings from a namespace parsed by a parser that `add_flags` extended.

    Raises:
        shared_settings.SettingsError: the durations are not ordered lease duration > renew deadline > retry
            period > 0.
    """
    try:
        timing = leaderelection.ElectionSettings(
            lease_duration=flags.leader_elect_lease_duration.total_seconds(),
            renew_deadline=flags.leader_elect_renew_deadline.total_seconds(),
            retry_period=flags.leader_elect_retry_period.total_seconds(),
        )
    except ValueError:
        raise shared_settings.SettingsError(
            "need --leader-elect-lease-duration > --leader-elect-renew-deadline > --leader-elect-retry-period > 0"
        ) from None
    return LeaderElectionSettings(
        resource_name=flags.leader_elect_resource_name,
        enabled=flags.leader_elect,
        resource_namespace=flags.leader_elect_resource_namespace,
        identity=leaderelection.default_identity(flags.leader_elect_identity),
        timing=timing,
    )


def build_elector(
    api: objects.ObjectApi,
    settings: LeaderElectionSettings,
    *,
    on_started_leading: Callable[[], None],
    on_stopped_leading: Callable[[], None],
) -> leaderelection.LeaderElector | None:
    """The elector campaigning for the service's Lease, not started; None when election is off."""
    if not settings.enabled:
        return None
    return leaderelection.LeaderElector(
        api,
        namespace=settings.resource_namespace,
        name=settings.resource_name,
        identity=settings.identity,
        settings=settings.timing,
        on_started_leading=on_started_leading,
        on_stopped_leading=on_stopped_leading,
    )


def _boolean(text: str) -> bool:
    """`type=` for `--leader-elect=BOOL`: the spellings Go's `strconv.ParseBool` accepts, and yes/no."""
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean {text!r}: use true or false")


def _seconds_text(seconds: float) -> str:
    """A default written as the user would type it ("15s"), so `--help` shows it that way."""
    return f"{seconds:g}s"
