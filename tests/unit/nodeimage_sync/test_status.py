"""NodeImage status maintenance (upstream §4.4): response timeout, deadline, pruning and counts."""

from __future__ import annotations

from datetime import datetime, timedelta

from services.nodeimage_sync.logic import status
from services.shared.api.nodeimage import ImagePullPhase, ImageTagStatus, NodeImage
from tests.unit.nodeimage_sync.builders import T0, a_job_ref, a_nodeimage, a_status, a_tag, at

TIMEOUT = timedelta(minutes=10)
JOB = a_job_ref("j")


def maintain(nodeimage: NodeImage, now: datetime) -> status.StatusPlan:
    return status.maintain_status(nodeimage, now=now, response_timeout=TIMEOUT)


def only_tag(plan: status.StatusPlan, image: str = "nginx") -> ImageTagStatus:
    (tag,) = (plan.image_statuses or {})[image].tags
    return tag


def test_unanswered_tag_waits_for_the_response_timeout():
    plan = maintain(a_nodeimage(images={"nginx": (a_tag(owners=(JOB,)),)}), at(60))
    assert not plan.changed
    assert plan.requeue_after == 540.0


def test_unanswered_tag_fails_after_the_response_timeout_with_upstreams_message():
    plan = maintain(a_nodeimage(images={"nginx": (a_tag(owners=(JOB,), version=4),)}), at(600))
    assert plan.changed
    tag = only_tag(plan)
    assert (tag.phase, tag.message, tag.version, tag.completion_time) == (
        ImagePullPhase.FAILED,
        "node has not responded for a long time",
        4,
        at(600),
    )
    assert plan.failures == (status.Failure("nginx", "latest", "node has not responded for a long time", (JOB,)),)
    assert plan.counts == {"desired": 1, "succeeded": 0, "failed": 1, "pulling": 0}


def test_status_of_another_version_counts_as_unanswered():
    nodeimage = a_nodeimage(
        images={"nginx": (a_tag(version=2),)}, statuses={"nginx": (a_status(version=1, completed=at(0)),)}
    )
    assert maintain(nodeimage, at(599)).requeue_after == 1.0
    tag = only_tag(maintain(nodeimage, at(601)))
    assert (tag.phase, tag.version) == (ImagePullPhase.FAILED, 2)


def test_unfinished_tag_fails_after_deadline_plus_response_timeout():
    nodeimage = a_nodeimage(
        images={"nginx": (a_tag(deadline=100, owners=(JOB,)),)},
        statuses={"nginx": (a_status(phase=ImagePullPhase.PULLING),)},
    )
    pending = maintain(nodeimage, at(650))
    assert not pending.changed
    assert pending.requeue_after == 50.0
    plan = maintain(nodeimage, at(700))
    tag = only_tag(plan)
    assert (tag.phase, tag.message, tag.completion_time) == (
        ImagePullPhase.FAILED,
        "pulling exceeds the activeDeadlineSeconds",
        at(700),
    )
    assert plan.failures[0].message == "pulling exceeds the activeDeadlineSeconds"


def test_finished_tag_is_not_touched_by_the_deadline():
    nodeimage = a_nodeimage(images={"nginx": (a_tag(deadline=1),)}, statuses={"nginx": (a_status(completed=at(5)),)})
    plan = maintain(nodeimage, at(10_000))
    assert not plan.changed
    assert plan.requeue_after is None


def test_status_entries_not_in_spec_are_pruned_and_counts_recomputed():
    nodeimage = a_nodeimage(
        images={"nginx": (a_tag("1"),)},
        statuses={
            "nginx": (a_status("1", completed=at(1)), a_status("old", phase=ImagePullPhase.FAILED)),
            "gone": (a_status("x"),),
        },
        waiting=3,
    )
    plan = maintain(nodeimage, at(10))
    assert plan.changed
    assert list(plan.image_statuses or {}) == ["nginx"]
    assert [t.tag for t in only_tag_list(plan)] == ["1"]
    assert plan.counts == {"desired": 1, "succeeded": 1, "failed": 0, "pulling": 0}
    assert plan.failures == ()


def only_tag_list(plan: status.StatusPlan) -> tuple[ImageTagStatus, ...]:
    return (plan.image_statuses or {})["nginx"].tags


def test_tag_without_created_at_is_left_alone():
    plan = maintain(a_nodeimage(images={"nginx": (a_tag(created_at=None),)}), at(10_000))
    assert not plan.changed
    assert plan.requeue_after is None


def test_failure_event_message_is_upstreams():
    message = status.failure_event_message(image="nginx", tag="1.25", node="n1", message="boom")
    assert message == "Failed to pull image nginx:1.25 on node n1 for boom"


def test_created_at_counts_not_now():
    plan = maintain(a_nodeimage(images={"nginx": (a_tag(created_at=T0 - timedelta(minutes=11)),)}), T0)
    assert only_tag(plan).phase == ImagePullPhase.FAILED
