"""Merge patches carry only what changed; conflicting writes are re-read, re-decided and retried, boundedly."""

from __future__ import annotations

import pytest

from services.shared.kube import errors, patching


@pytest.mark.parametrize(
    ("old", "new", "patch"),
    [
        pytest.param({"a": 1}, {"a": 1}, {}, id="equal"),
        pytest.param({"a": 1}, {"a": 2}, {"a": 2}, id="changed-scalar"),
        pytest.param({"a": 1, "b": 2}, {"a": 1}, {"b": None}, id="removed-key"),
        pytest.param({}, {"s": {"x": 1}}, {"s": {"x": 1}}, id="added-object"),
        pytest.param({"s": {"x": 1, "y": 2}}, {"s": {"x": 1, "y": 3}}, {"s": {"y": 3}}, id="nested"),
        pytest.param({"l": [1, 2]}, {"l": [1, 2, 3]}, {"l": [1, 2, 3]}, id="list-replaced-whole"),
        pytest.param({"s": {"x": 1}}, {"s": "flat"}, {"s": "flat"}, id="object-to-scalar"),
    ],
)
def test_merge_patch(old, new, patch):
    assert patching.merge_patch(old, new) == patch


def conflict() -> errors.Conflict:
    return errors.Conflict("modified", code=409, reason="Conflict")


class Scripted:
    """A read/write pair where the first `conflicts` writes conflict."""

    def __init__(self, conflicts: int) -> None:
        self.conflicts = conflicts
        self.reads = 0
        self.writes: list[tuple[int, str]] = []

    def read(self) -> int:
        self.reads += 1
        return self.reads

    def write(self, version: int, decision: str) -> str:
        self.writes.append((version, decision))
        if len(self.writes) <= self.conflicts:
            raise conflict()
        return f"wrote {decision} at {version}"


def test_conflicts_are_retried_from_a_fresh_read():
    script = Scripted(conflicts=2)
    result = patching.retry_on_conflict(script.read, lambda v: f"d{v}", script.write, sleep=lambda s: None)
    assert result == "wrote d3 at 3"
    assert script.writes == [(1, "d1"), (2, "d2"), (3, "d3")]


def test_nothing_to_do_writes_nothing():
    script = Scripted(conflicts=0)
    assert patching.retry_on_conflict(script.read, lambda v: None, script.write, sleep=lambda s: None) is None
    assert script.writes == []


def test_gives_up_after_the_attempts():
    script = Scripted(conflicts=10)
    with pytest.raises(errors.Conflict):
        patching.retry_on_conflict(script.read, lambda v: "d", script.write, attempts=3, sleep=lambda s: None)
    assert len(script.writes) == 3


def test_other_errors_are_not_retried():
    def write(version, decision):
        raise errors.NotFound("gone", code=404)

    with pytest.raises(errors.NotFound):
        patching.retry_on_conflict(lambda: 1, lambda v: "d", write, sleep=lambda s: None)
