"""Which expectation keys still wait for a write to reach the cache (what a reconcile checks its targets against)."""

from __future__ import annotations

from services.scheduler.expectations import Expectations


def test_pending_keys_lists_the_unreleased_writes_under_a_prefix() -> None:
    expectations = Expectations(timeout_seconds=10)
    expectations.expect("nodeimage/a", "5", "job", now=0)
    expectations.expect("nodeimage/b", "7", "job", now=0)
    expectations.expect("imagepulljob/ns/j", "3", "job", now=0)
    assert sorted(expectations.pending_keys("nodeimage/")) == ["nodeimage/a", "nodeimage/b"]
    expectations.observed("nodeimage/a", "5")
    assert expectations.pending_keys("nodeimage/") == ["nodeimage/b"]
    assert expectations.satisfied("nodeimage/b", "8", now=1)
    assert expectations.pending_keys("nodeimage/") == []
