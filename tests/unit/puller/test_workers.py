"""Workers against a scripted runtime: attempts, presence, credentials order, cancellation, the slot limit."""

from __future__ import annotations

import threading
import time
from collections import deque

from services.puller import cri, statusbook, workers
from services.puller.logic import backoff, tagstate
from services.puller.logic.tagstate import PullTask, TagKey
from services.shared.api import nodeimage
from tests.unit.puller.fake_images import FakeImages

REFERENCE = "reg:5000/app:v1"
KEY = TagKey("reg:5000/app", "v1")
NO_SLEEP = backoff.RetryPolicy(initial=0.0, cap=0.0)
WAIT = 10.0


class Credentials:
    def __init__(self, *users: str) -> None:
        self.users = users
        self.asked: list[str] = []

    def credentials_for(self, reference: str) -> list[cri.Auth]:
        self.asked.append(reference)
        return [cri.Auth(username=user, password="secret") for user in self.users]


def run(task: PullTask, images: FakeImages, **deps: object) -> tuple[statusbook.StatusBook, workers.TagWorker]:
    book = statusbook.StatusBook()
    worker = workers.TagWorker(
        task,
        deps=workers.WorkerDeps(images=images, slots=workers.PullSlots(4), retry=NO_SLEEP, **deps),  # type: ignore[arg-type]
        book=book,
        token=book.claim(task.key),
    )
    worker.start()
    return book, worker


def finished(book: statusbook.StatusBook, worker: workers.TagWorker) -> nodeimage.ImageTagStatus:
    worker.join(WAIT)
    assert not worker.alive()
    status = book.get(KEY)
    assert status is not None
    return status


def a_task(**fields: object) -> PullTask:
    return PullTask(key=KEY, version=0, reference=REFERENCE, **fields)  # type: ignore[arg-type]


def test_retries_until_success() -> None:
    images = FakeImages(script={REFERENCE: deque(["boom", "boom", "ok"])})
    status = finished(*run(a_task(attempts=4), images))
    assert status.phase == "Succeeded"
    assert len(images.pulls) == 3


def test_fails_with_the_last_error_after_all_attempts() -> None:
    images = FakeImages(script={REFERENCE: deque(["first", "second"])})
    status = finished(*run(a_task(attempts=2), images))
    assert (status.phase, status.message) == ("Failed", "second")
    assert status.completion_time is not None and status.start_time is not None


def test_if_not_present_skips_the_pull() -> None:
    present = cri.RuntimeImage(id="sha256:" + "c" * 64)
    images = FakeImages(present={REFERENCE: present})
    status = finished(*run(a_task(always_pull=False), images))
    assert (status.phase, status.image_id) == ("Succeeded", f"{KEY.image}@{present.id}")
    assert images.pulls == []


def test_credentials_are_tried_in_order_without_anonymous_fallback() -> None:
    images = FakeImages(script={REFERENCE: deque(["401 for alice", "401 for bob"])})
    credentials = Credentials("alice", "bob")
    status = finished(*run(a_task(attempts=1, has_pull_secrets=True), images, credentials=credentials))
    assert images.pulls == [(REFERENCE, "alice"), (REFERENCE, "bob")]
    assert status.message == "401 for alice; 401 for bob"
    assert "secret" not in status.message


def test_second_credential_can_succeed() -> None:
    images = FakeImages(script={REFERENCE: deque(["401", "ok"])})
    status = finished(*run(a_task(attempts=1, has_pull_secrets=True), images, credentials=Credentials("a", "b")))
    assert status.phase == "Succeeded"


def test_stopping_cancels_the_pull_and_records_nothing_more() -> None:
    images = FakeImages(gate=threading.Event())
    book, worker = run(a_task(), images)
    deadline = time.monotonic() + WAIT
    while images.in_flight == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert (book.get(KEY) or tagstate.waiting(KEY, 0)).phase == "Pulling"
    worker.stop()
    book.release(KEY, worker.token)
    worker.join(WAIT)
    assert not worker.alive()
    assert images.in_flight == 0
    assert (book.get(KEY) or tagstate.waiting(KEY, 0)).phase == "Pulling"


def test_invalid_reference_fails_without_pulling() -> None:
    images = FakeImages()
    task = PullTask(key=KEY, version=0, reference="", invalid_reason="invalid image reference 'X': bad")
    status = finished(*run(task, images))
    assert (status.phase, status.message) == ("Failed", "invalid image reference 'X': bad")
    assert images.pulls == []


def test_slots_bound_pulls_in_flight() -> None:
    gate = threading.Event()
    images = FakeImages(gate=gate)
    book = statusbook.StatusBook()
    deps = workers.WorkerDeps(images=images, slots=workers.PullSlots(2), retry=NO_SLEEP)
    started = []
    for index in range(5):
        task = PullTask(key=TagKey("reg:5000/app", f"v{index}"), version=0, reference=f"reg:5000/app:v{index}")
        worker = workers.TagWorker(task, deps=deps, book=book, token=book.claim(task.key))
        worker.start()
        started.append(worker)
    deadline = time.monotonic() + WAIT
    while images.in_flight < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    waiting = [entry.phase for entry in book.snapshot().values()].count("Waiting")
    gate.set()
    for worker in started:
        worker.join(WAIT)
    assert images.max_in_flight == 2
    assert waiting == 3
    assert all(entry.phase == "Succeeded" for entry in book.snapshot().values())
