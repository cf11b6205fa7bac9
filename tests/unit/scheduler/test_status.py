"""Status counting, messages, completion and the deadline (upstream §2.4, §1.3, §10.2-4)."""

from __future__ import annotations

from typing import Any

import pytest

from services.scheduler.logic import status as job_status
from services.shared.api.conditions import find_condition
from services.shared.api.imagepulljob import ImagePullJob
from services.shared.api.nodeimage import NodeImage
from tests.unit.scheduler.builders import JOB_UID, at, job, node, tag_entry, tag_status

STARTED = {"startTime": "2026-01-01T00:00:00Z", "desired": 0}


def observe(j: ImagePullJob, nodes: list[NodeImage], now: float = 10) -> Any:
    return job_status.observe(j, targets=nodes, image="nginx", tag="1.25", now=at(now))


def test_counts_follow_the_version_protocol() -> None:
    nodes = [
        node("a", tags=[tag_entry()], statuses=[tag_status(phase="Succeeded")]),
        node("b", tags=[tag_entry(version=2)], statuses=[tag_status(phase="Succeeded", version=1)]),
        node("c", tags=[tag_entry()], statuses=[tag_status(phase="Failed", message="boom")]),
        node("d", tags=[tag_entry()]),
        node("e", tags=[tag_entry()], statuses=[tag_status(phase="Waiting")]),
        node("f", tags=[tag_entry(owners=("other",))]),
        node("g"),
    ]
    result = observe(job(status=STARTED), nodes)
    s = result.status
    assert (s.desired, s.active, s.succeeded, s.failed) == (7, 3, 1, 1)
    assert s.failed_nodes == ("c",)
    assert s.node_failures is not None and s.node_failures[0].message == "boom"
    assert result.not_synced == ("f", "g")
    assert s.message == "job is running, progress 28.6%"
    assert s.completion_time is None
    assert not result.finished_now


def test_always_job_with_no_targets_completes_at_once() -> None:
    result = observe(job(), [], now=3)
    assert result.finished_now
    assert result.status.completion_time == at(3)
    assert result.status.start_time == at(3)
    assert result.status.message == "job has completed"
    complete = find_condition(result.status.conditions, "Complete")
    assert complete is not None and complete.status == "True"


def test_never_job_with_no_targets_keeps_running() -> None:
    result = observe(job(completionPolicy={"type": "Never"}), [])
    assert not result.finished_now
    assert result.status.message == "job is running, no progress"


def test_all_finished_completes_with_failures_listed() -> None:
    nodes = [
        node("b", tags=[tag_entry()], statuses=[tag_status(phase="Failed")]),
        node("a", tags=[tag_entry()], statuses=[tag_status(phase="Succeeded")]),
    ]
    result = observe(job(status=STARTED), nodes)
    assert result.finished_now
    assert (result.status.succeeded, result.status.failed, result.status.active) == (1, 1, 0)
    failed = find_condition(result.status.conditions, "Failed")
    assert failed is not None and failed.status == "True" and "b" in failed.message
    assert result.status.node_failures is not None and result.status.node_failures[0].message  # never empty


def test_deadline_fails_pulling_and_unsynced_nodes() -> None:
    nodes = [
        node("a", tags=[tag_entry()], statuses=[tag_status(phase="Succeeded")]),
        node("b", tags=[tag_entry()], statuses=[tag_status(phase="Pulling")]),
        node("c"),
    ]
    j = job(status=STARTED, completionPolicy={"activeDeadlineSeconds": 60})
    assert not observe(j, nodes, now=59).finished_now
    result = observe(j, nodes, now=60)
    s = result.status
    assert result.finished_now
    assert (s.succeeded, s.failed, s.active) == (1, 2, 0)
    assert s.failed_nodes == ("b", "c")
    assert s.message == "job exceeds activeDeadlineSeconds"
    assert s.node_failures is not None and all(f.reason == "DeadlineExceeded" for f in s.node_failures)
    assert result.not_synced == ()


def test_missing_secret_reference_does_not_unsync_a_node() -> None:
    nodes = [node("a", tags=[tag_entry()], statuses=[tag_status()], pull_secrets=[])]
    result = observe(job(status=STARTED, pullSecrets=["regcred"]), nodes)
    assert result.not_synced == ()
    assert result.status.succeeded == 1


def test_unchanged_observation_reproduces_the_same_status() -> None:
    nodes = [node("a", tags=[tag_entry()], statuses=[tag_status(phase="Pulling")])]
    first = observe(job(status=STARTED), nodes, now=10).status
    again = observe(job(status=first.to_dict()), nodes, now=20).status
    assert again.to_dict() == first.to_dict()


@pytest.mark.parametrize(
    ("desired", "succeeded", "failed", "expected"),
    [
        (0, 0, 0, "job is running, no progress"),
        (3, 1, 0, "job is running, progress 33.3%"),
        (8, 1, 0, "job is running, progress 12.5%"),
    ],
)
def test_progress_message(desired: int, succeeded: int, failed: int, expected: str) -> None:
    assert job_status.progress_message(desired, succeeded, failed) == expected


def test_owner_uid_is_what_counts() -> None:
    nodes = [node("a", tags=[tag_entry(owners=("x", JOB_UID))], statuses=[tag_status()])]
    assert observe(job(status=STARTED), nodes).status.succeeded == 1
