"""Waiting for our own writes to reach the cache."""

from __future__ import annotations

from services.scheduler.expectations import Expectations


def test_pending_until_the_cache_catches_up() -> None:
    expectations = Expectations(timeout_seconds=60)
    expectations.expect("ni/a", "105", "ns/job", now=0)
    assert not expectations.satisfied("ni/a", "104", now=1)
    assert expectations.satisfied("ni/a", "105", now=1)
    assert expectations.satisfied("ni/a", "104", now=1)  # nothing pending any more


def test_observed_version_releases_the_waiters() -> None:
    expectations = Expectations(timeout_seconds=60)
    expectations.expect("ni/a", "10", "ns/j1", now=0)
    expectations.expect("ni/a", "12", "ns/j2", now=0)
    assert expectations.observed("ni/a", "11") == set()
    assert expectations.observed("ni/a", "12") == {"ns/j1", "ns/j2"}
    assert expectations.satisfied("ni/a", "5", now=0)


def test_a_lost_event_stops_blocking_after_the_timeout() -> None:
    expectations = Expectations(timeout_seconds=5)
    expectations.expect("ni/a", "10", "ns/j", now=0)
    assert not expectations.satisfied("ni/a", "9", now=4.9)
    assert expectations.satisfied("ni/a", "9", now=5)


def test_unparsable_versions_never_block() -> None:
    expectations = Expectations(timeout_seconds=5)
    expectations.expect("ni/a", "abc", "ns/j", now=0)
    assert expectations.satisfied("ni/a", "1", now=0)


def test_any_pending_registers_the_waiter_on_every_unseen_write() -> None:
    expectations = Expectations(timeout_seconds=60)

    def nothing_cached(_key: str) -> str | None:
        return None

    assert not expectations.any_pending("ni/", "ns/b", now=0, cached_version=nothing_cached)
    expectations.expect("ni/a", "10", "ns/a", now=0)
    expectations.expect("other/x", "10", "ns/a", now=0)
    assert expectations.any_pending("ni/", "ns/b", now=1, cached_version=nothing_cached)
    assert expectations.observed("ni/a", "10") == {"ns/a", "ns/b"}
    assert not expectations.any_pending("ni/", "ns/b", now=1, cached_version=nothing_cached)


def test_any_pending_clears_writes_the_cache_already_holds() -> None:
    expectations = Expectations(timeout_seconds=60)
    expectations.expect("ni/a", "10", "ns/a", now=0)  # its event came before the write was recorded
    assert not expectations.any_pending("ni/", "ns/b", now=1, cached_version=lambda key: "10")


def test_a_job_that_finds_another_jobs_write_pending_is_released_with_it() -> None:
    # Regression (issue 9): job B found job A's write to a shared NodeImage not yet cached and requeued for the
    # fallback 5 s; the write's event released only A, and nothing else wakes B when the write is for A's image.
    expectations = Expectations(timeout_seconds=60)
    expectations.expect("ni/a", "10", "ns/a", now=0)
    assert not expectations.satisfied("ni/a", "9", now=1, waiter="ns/b")
    assert expectations.observed("ni/a", "10") == {"ns/a", "ns/b"}
