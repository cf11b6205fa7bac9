"""Parallelism slots, node choice, TTL and deadline arithmetic."""

from __future__ import annotations

import pytest

from services.scheduler.logic import completion, rollout
from tests.unit.scheduler.builders import at


@pytest.mark.parametrize(
    ("parallelism", "active", "expected"),
    [(None, 0, 1), (None, 1, 0), (0, 0, 0), (3, 1, 2), ("4", 1, 3), ("bad", 0, 0), (2, 5, 0)],
)
def test_slots(parallelism: int | str | None, active: int, expected: int) -> None:
    assert rollout.slots(parallelism, active) == expected


def test_cluster_and_registry_caps_shrink_slots() -> None:
    assert rollout.slots(10, 0, cluster_in_flight=7, cluster_cap=8) == 1
    assert rollout.slots(10, 0, registry_in_flight=3, registry_cap=3) == 0
    assert rollout.slots(2, 0, cluster_in_flight=100, cluster_cap=0) == 2


def test_nodes_are_taken_in_name_order() -> None:
    assert rollout.choose_nodes(["c", "a", "b"], 2) == ["a", "b"]
    assert rollout.choose_nodes(["c", "a"], 0) == []


@pytest.mark.parametrize(
    ("ttl", "finished_at", "now", "expected"),
    [(None, 0, 10, None), (60, None, 10, None), (60, 0, 10, 50.0), (60, 0, 60, 0.0), (60, 0, 100, -40.0)],
)
def test_ttl_remaining(ttl: int | None, finished_at: float | None, now: float, expected: float | None) -> None:
    completion_time = None if finished_at is None else at(finished_at)
    assert completion.ttl_remaining(ttl, completion_time, at(now)) == expected


@pytest.mark.parametrize(
    ("deadline", "started", "now", "expected"),
    [(None, 0, 5, None), (30, 0, 5, 25.0), (30, 0, 29.5, 1.0), (30, 0, 100, 1.0)],
)
def test_deadline_requeue(deadline: int | None, started: float, now: float, expected: float | None) -> None:
    assert completion.deadline_requeue(deadline, at(started), at(now)) == expected
