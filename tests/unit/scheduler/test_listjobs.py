"""ImageListPullJob decisions (upstream §3, §1.4)."""

from __future__ import annotations

from typing import Any

from services.scheduler.logic import listjobs
from services.shared.api.imagelistpulljob import ImageListPullJob
from services.shared.api.imagepulljob import ImagePullJob
from tests.unit.scheduler.builders import at


def list_job(images: list[str], **template: Any) -> ImageListPullJob:
    return ImageListPullJob.from_dict(
        {
            "metadata": {"name": "l", "namespace": "ns", "uid": "u", "generation": 2},
            "spec": {"images": images, "completionPolicy": {}, **template},
        }
    )


def child(name: str, image: str, hash_: str, status: dict[str, Any] | None = None) -> ImagePullJob:
    body: dict[str, Any] = {
        "metadata": {"name": name, "namespace": "ns", "labels": {"controller-revision-hash": hash_}},
        "spec": {"image": image, "completionPolicy": {}},
    }
    if status is not None:
        body["status"] = status
    return ImagePullJob.from_dict(body)


def test_template_hash_changes_with_the_template_only() -> None:
    a = listjobs.template_hash(list_job(["x"], parallelism=2))
    assert a == listjobs.template_hash(list_job(["y", "z"], parallelism=2))
    assert a != listjobs.template_hash(list_job(["x"], parallelism=3))
    assert len(a) == 8


def test_plan_creates_missing_and_recreates_stale_children() -> None:
    children = [child("l-1", "a", "h"), child("l-2", "b", "old"), child("l-3", "gone", "h")]
    plan = listjobs.plan_children(["a", "b", "c"], children, "h")
    assert plan.create == ("b", "c")
    assert plan.delete == ("l-2", "l-3")


def test_slow_start_batches() -> None:
    assert list(listjobs.slow_start_batches(10)) == [1, 2, 4, 3]
    assert list(listjobs.slow_start_batches(0)) == []


def test_aggregate_status() -> None:
    started = "2026-01-01T00:00:00Z"
    children = {
        "a": child("l-a", "a", "h", {"startTime": started, "desired": 2, "succeeded": 2}),
        "b": child("l-b", "b", "h", {"startTime": started, "desired": 2, "succeeded": 1, "failed": 1}),
        "c": child("l-c", "c", "h", {"startTime": started, "desired": 2, "active": 1}),
        "d": child("l-d", "d", "h", {"desired": 2, "succeeded": 2}),
    }
    status = listjobs.aggregate_status(list_job(["a", "b", "c", "d"]), children, at(1))
    assert (status.desired, status.active, status.completed, status.succeeded) == (4, 1, 2, 1)
    assert status.completion_time is None
    assert status.failed_image_statuses is not None
    assert status.failed_image_statuses[0].image_pull_job == "l-b"
    assert "kubectl get ImagePullJob l-b" in status.failed_image_statuses[0].message


def test_aggregate_completes_when_all_children_add_up() -> None:
    started = "2026-01-01T00:00:00Z"
    children = {"a": child("l-a", "a", "h", {"startTime": started, "desired": 1, "failed": 1})}
    status = listjobs.aggregate_status(list_job(["a"]), children, at(7))
    assert status.completion_time == at(7)
    assert status.observed_generation == 2
