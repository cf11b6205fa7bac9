"""Lease rules: a valid lease held by another is respected; free, released or expired leases are taken."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.shared.kube import leases

T0 = datetime(2025, 1, 1, tzinfo=UTC)
T1 = datetime(2025, 1, 1, 0, 0, 5, 123456, tzinfo=UTC)


def held_by(holder: str, transitions: int = 3) -> leases.LeaseRecord:
    return leases.LeaseRecord(holder, 15, T0, T0, transitions)


def test_a_missing_lease_is_created_for_the_candidate():
    record = leases.next_record(None, identity="me", lease_duration_seconds=15, now=T1, expired=False)
    assert record == leases.LeaseRecord("me", 15, T1, T1, 0)


def test_the_holder_renews_keeping_acquire_time_and_transitions():
    record = leases.next_record(held_by("me"), identity="me", lease_duration_seconds=15, now=T1, expired=True)
    assert record == leases.LeaseRecord("me", 15, T0, T1, 3)


def test_a_valid_lease_of_another_holder_is_respected():
    assert leases.next_record(held_by("other"), identity="me", lease_duration_seconds=15, now=T1, expired=False) is None


@pytest.mark.parametrize(
    ("observed", "expired"),
    [
        pytest.param(held_by("other"), True, id="expired"),
        pytest.param(leases.released(held_by("other"), now=T0), False, id="released"),
    ],
)
def test_an_expired_or_released_lease_is_taken_with_one_more_transition(observed, expired):
    record = leases.next_record(observed, identity="me", lease_duration_seconds=15, now=T1, expired=expired)
    assert record == leases.LeaseRecord("me", 15, T1, T1, 4)


def test_records_round_trip_through_a_lease_spec_with_micro_time():
    record = leases.LeaseRecord("me", 15, T0, T1, 2)
    spec = record.to_spec()
    assert spec["renewTime"] == "2025-01-01T00:00:05.123456Z"
    assert spec["acquireTime"] == "2025-01-01T00:00:00.000000Z"
    assert leases.LeaseRecord.from_lease({"spec": spec}) == record


def test_an_empty_lease_reads_as_free():
    assert leases.LeaseRecord.from_lease({"spec": {}}) == leases.LeaseRecord("", 0, None, None, 0)
