"""The status book keeps only the current worker's reports, and says when something changed."""

from __future__ import annotations

from services.puller import reconciler, statusbook
from services.puller.logic import tagstate
from services.puller.logic.tagstate import TagKey
from tests.unit.puller.builders import T0

KEY = TagKey("ubuntu", "latest")


def test_reports_of_a_stopped_worker_are_dropped() -> None:
    changes: list[None] = []
    book = statusbook.StatusBook(on_change=lambda: changes.append(None))
    old = book.claim(KEY)
    assert book.record(KEY, old, tagstate.waiting(KEY, 0))
    new = book.claim(KEY)
    assert not book.record(KEY, old, tagstate.pulling(KEY, 0, T0))
    assert book.record(KEY, new, tagstate.waiting(KEY, 1))
    book.release(KEY, new)
    assert not book.record(KEY, new, tagstate.pulling(KEY, 1, T0))
    assert book.get(KEY) == tagstate.waiting(KEY, 1)
    assert len(changes) == 2


def test_unchanged_reports_do_not_wake_the_writer() -> None:
    changes: list[None] = []
    book = statusbook.StatusBook(on_change=lambda: changes.append(None))
    token = book.claim(KEY)
    book.record(KEY, token, tagstate.waiting(KEY, 0))
    book.record(KEY, token, tagstate.waiting(KEY, 0))
    assert len(changes) == 1


def test_forget_and_clear() -> None:
    book = statusbook.StatusBook()
    book.adopt(KEY, tagstate.waiting(KEY, 0))
    book.forget(KEY)
    assert book.snapshot() == {}
    book.adopt(KEY, tagstate.waiting(KEY, 0))
    book.clear()
    assert book.snapshot() == {}


def test_enqueue_on_spec_changes_and_on_status_written_by_others() -> None:
    old = {"spec": {"images": {}}, "status": {"desired": 0}}
    assert reconciler.should_enqueue(old, {"spec": {"images": {"a": {}}}, "status": {"desired": 0}}, None)
    ours = {"desired": 1}
    assert not reconciler.should_enqueue(old, {"spec": {"images": {}}, "status": ours}, ours)
    assert reconciler.should_enqueue(old, {"spec": {"images": {}}, "status": {"desired": 2}}, ours)
    assert not reconciler.should_enqueue(old, dict(old), None)
