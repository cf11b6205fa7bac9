"""Two electors on one Lease of the real apiserver: exactly one leads; the other takes over when it stops."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from localcluster.process import wait_until
from services.shared.kube import leaderelection, leases, resources

pytestmark = pytest.mark.integration

FAST = leaderelection.ElectionSettings(lease_duration=3.0, renew_deadline=2.0, retry_period=0.5)
WAIT = 30.0


class Candidate:
    """An elector plus a log of its leadership callbacks."""

    def __init__(self, api, namespace: str, identity: str) -> None:
        self.transitions: list[str] = []
        self.elector = leaderelection.LeaderElector(
            api,
            namespace=namespace,
            name="election",
            identity=identity,
            settings=FAST,
            on_started_leading=lambda: self.transitions.append("started"),
            on_stopped_leading=lambda: self.transitions.append("stopped"),
        )


@pytest.fixture
def candidates(kube_api, kube_namespace) -> Iterator[tuple[Candidate, Candidate]]:
    pair = (Candidate(kube_api, kube_namespace, "replica-a"), Candidate(kube_api, kube_namespace, "replica-b"))
    for candidate in pair:
        candidate.elector.start()
    yield pair
    for candidate in pair:
        candidate.elector.stop()


def one_leads(pair: tuple[Candidate, Candidate]) -> bool:
    a, b = pair
    return a.elector.is_leader() != b.elector.is_leader()


def leader_and_follower(pair: tuple[Candidate, Candidate]) -> tuple[Candidate, Candidate]:
    a, b = pair
    return (a, b) if a.elector.is_leader() else (b, a)


def never_both_lead(pair: tuple[Candidate, Candidate], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if all(c.elector.is_leader() for c in pair):
            return False
        time.sleep(0.02)
    return True


def lease_record(kube_api, namespace: str) -> leases.LeaseRecord:
    return leases.LeaseRecord.from_lease(kube_api.get(resources.LEASES, "election", namespace=namespace))


def test_exactly_one_leads_and_the_other_takes_over_at_once_after_a_clean_stop(candidates, kube_api, kube_namespace):
    wait_until(lambda: one_leads(candidates), timeout=WAIT, what="one leader")
    assert never_both_lead(candidates, seconds=3 * FAST.lease_duration)
    leader, follower = leader_and_follower(candidates)
    assert lease_record(kube_api, kube_namespace).holder == leader.elector.identity
    assert leader.transitions == ["started"] and follower.transitions == []

    stopped_at = time.monotonic()
    leader.elector.stop()
    assert leader.transitions == ["started", "stopped"]
    assert not leader.elector.is_leader()
    wait_until(follower.elector.is_leader, timeout=WAIT, what="the follower to take over")
    assert time.monotonic() - stopped_at < FAST.lease_duration  # released: no waiting for expiry
    record = lease_record(kube_api, kube_namespace)
    assert (record.holder, record.transitions) == (follower.elector.identity, 1)
    assert follower.transitions == ["started"]


def test_the_other_takes_over_after_expiry_when_the_leader_stops_renewing(candidates, kube_api, kube_namespace):
    wait_until(lambda: one_leads(candidates), timeout=WAIT, what="one leader")
    leader, follower = leader_and_follower(candidates)
    leader.elector.stop(release=False)  # like a crash: the Lease stays with the old holder
    stopped_at = time.monotonic()
    assert lease_record(kube_api, kube_namespace).holder == leader.elector.identity
    wait_until(follower.elector.is_leader, timeout=WAIT, what="the follower to take over")
    took = time.monotonic() - stopped_at
    assert took >= FAST.lease_duration - FAST.retry_period * 1.2 - 0.1  # not before the lease could expire
    record = lease_record(kube_api, kube_namespace)
    assert (record.holder, record.transitions) == (follower.elector.identity, 1)


def test_a_leader_that_cannot_renew_steps_down(kube_api, kube_namespace):
    """If the Lease is taken away (here: another writer overwrites it), the leader stops within the deadline."""
    stopped = threading.Event()
    elector = leaderelection.LeaderElector(
        kube_api,
        namespace=kube_namespace,
        name="contested",
        identity="replica-a",
        settings=FAST,
        on_stopped_leading=stopped.set,
    )
    elector.start()
    try:
        wait_until(elector.is_leader, timeout=WAIT, what="leadership")
        usurper = {"holderIdentity": "usurper", "leaseDurationSeconds": 3600}
        kube_api.patch(resources.LEASES, "contested", {"spec": usurper}, namespace=kube_namespace)
        assert stopped.wait(WAIT)
        assert not elector.is_leader()
        assert lease_record_named(kube_api, kube_namespace, "contested").holder == "usurper"
    finally:
        elector.stop()


def lease_record_named(kube_api, namespace: str, name: str) -> leases.LeaseRecord:
    return leases.LeaseRecord.from_lease(kube_api.get(resources.LEASES, name, namespace=namespace))
