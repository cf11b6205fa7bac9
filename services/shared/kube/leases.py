"""The leader-election record kept in a coordination.k8s.io/v1 Lease, and the pure rules for changing it.

A Lease's spec is the whole protocol: `holderIdentity` (who leads), `leaseDurationSeconds` (how long others
must wait after the last renewal they saw), `acquireTime`, `renewTime` and `leaseTransitions` (how often the
leader changed). Writers use the Lease's resourceVersion as a precondition, so of two candidates writing at
once exactly one succeeds.

Expiry is judged the way client-go judges it: not by comparing `renewTime` with our own wall clock (clocks
of two machines disagree), but by how long *we* have watched the record stay unchanged, on our monotonic
clock. The decision (`next_record`) is pure, so the rules are testable without an apiserver.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from services.shared.api import timefmt


@dataclass(frozen=True)
class LeaseRecord:
    """The election-relevant part of a Lease's spec."""

    holder: str
    lease_duration_seconds: int
    acquire_time: datetime | None
    renew_time: datetime | None
    transitions: int

    @classmethod
    def from_lease(cls, lease: Mapping[str, Any]) -> LeaseRecord:
        """Read the record from a Lease object (missing fields read as empty)."""
        spec = lease.get("spec") or {}
        return cls(
            holder=str(spec.get("holderIdentity") or ""),
            lease_duration_seconds=int(spec.get("leaseDurationSeconds") or 0),
            acquire_time=_parse(spec.get("acquireTime")),
            renew_time=_parse(spec.get("renewTime")),
            transitions=int(spec.get("leaseTransitions") or 0),
        )

    def to_spec(self) -> dict[str, Any]:
        """The Lease spec that stores this record (times as MicroTime: exactly six fraction digits)."""
        return {
            "holderIdentity": self.holder,
            "leaseDurationSeconds": self.lease_duration_seconds,
            "acquireTime": _micro_time(self.acquire_time),
            "renewTime": _micro_time(self.renew_time),
            "leaseTransitions": self.transitions,
        }


def next_record(
    observed: LeaseRecord | None, *, identity: str, lease_duration_seconds: int, now: datetime, expired: bool
) -> LeaseRecord | None:
    """The record `identity` should write to acquire or renew the lease, or None if it must not.

    Args:
        observed: the record as last read; None when no Lease exists yet.
        identity: the candidate.
        lease_duration_seconds: what the candidate promises to renew within.
        now: wall-clock time for `acquireTime`/`renewTime`.
        expired: whether `observed` has stayed unchanged for its whole `leaseDurationSeconds`.

    Returns:
        A renewal (same acquire time and transitions) if `identity` holds the lease; an acquisition (new
        acquire time, one more transition) if the lease is free, released or expired; else None.
    """
    if observed is None:
        return LeaseRecord(identity, lease_duration_seconds, now, now, 0)
    if observed.holder == identity:
        return replace(observed, lease_duration_seconds=lease_duration_seconds, renew_time=now)
    if observed.holder and not expired:
        return None
    return LeaseRecord(identity, lease_duration_seconds, now, now, observed.transitions + 1)


def released(record: LeaseRecord, *, now: datetime) -> LeaseRecord:
    """The record a leader writes when it steps down cleanly: no holder, so a candidate acquires at once."""
    return replace(record, holder="", lease_duration_seconds=1, acquire_time=now, renew_time=now)


def _parse(value: object) -> datetime | None:
    return timefmt.parse_time(value) if isinstance(value, str) and value else None


def _micro_time(moment: datetime | None) -> str | None:
    return None if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
