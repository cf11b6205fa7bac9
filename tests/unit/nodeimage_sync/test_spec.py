"""NodeImage spec maintenance rules (upstream §4.2, design §1), each on its own."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from services.nodeimage_sync.logic import spec
from services.shared.api import constants
from services.shared.api.meta import ObjectReference
from services.shared.api.nodeimage import ImagePullPhase, NodeImage, TraceContext
from tests.unit.nodeimage_sync.builders import T0, a_job_ref, a_nodeimage, a_status, a_tag, at

JOB_A = a_job_ref("a")
JOB_B = a_job_ref("b")


def maintain(
    nodeimage: NodeImage,
    *,
    node_labels: dict[str, str] | None = None,
    owners: dict[spec.OwnerKey, bool] | None = None,
    now: datetime = T0,
) -> spec.SpecPlan:
    return spec.maintain_spec(nodeimage, node_labels=node_labels, owners=owners or {}, now=now)


def tags_of(plan: spec.SpecPlan, image: str = "nginx") -> list[str] | None:
    images = plan.spec.images or {}
    return [t.tag for t in images[image].tags] if image in images else None


def test_nothing_to_do_is_unchanged():
    nodeimage = a_nodeimage(labels={"zone": "a"}, images={"nginx": (a_tag(owners=(JOB_A,)),)})
    plan = maintain(nodeimage, node_labels={"zone": "a"}, owners={spec.owner_key(JOB_A): True})
    assert not plan.changed
    assert plan.spec == nodeimage.spec
    assert plan.requeue_after is None


def test_labels_are_replaced_entirely_by_the_nodes():
    plan = maintain(a_nodeimage(labels={"zone": "a", "old": "x"}), node_labels={"zone": "b", "new": "y"})
    assert plan.changed
    assert plan.labels == {"zone": "b", "new": "y"}


def test_without_a_node_labels_are_kept():
    fake = a_nodeimage(labels={constants.LABEL_FAKE_NODE_IMAGE: "1", "zone": "a"})
    plan = maintain(fake, node_labels=None)
    assert not plan.changed
    assert plan.labels == {constants.LABEL_FAKE_NODE_IMAGE: "1", "zone": "a"}


def test_missing_created_at_is_stamped_with_now_not_dropped():
    plan = maintain(a_nodeimage(images={"ubuntu": (a_tag(created_at=None, ttl=300),)}), now=at(7))
    assert plan.changed
    (tag,) = (plan.spec.images or {})["ubuntu"].tags
    assert tag.created_at == at(7)


def test_owner_of_a_gone_job_is_dropped_and_the_tag_with_it():
    nodeimage = a_nodeimage(images={"nginx": (a_tag(owners=(JOB_A,)),)})
    plan = maintain(nodeimage, owners={spec.owner_key(JOB_A): False})
    assert plan.changed
    assert plan.spec.images is None


def test_only_the_gone_owner_is_dropped_when_others_remain():
    traces = (
        TraceContext(uid=JOB_A.uid, traceparent="00-" + "1" * 32 + "-" + "2" * 16 + "-01"),
        TraceContext(uid=JOB_B.uid, traceparent="00-" + "3" * 32 + "-" + "4" * 16 + "-01"),
    )
    tag = a_tag(owners=(JOB_A, JOB_B))
    nodeimage = a_nodeimage(images={"nginx": (replace(tag, trace_contexts=traces),)})
    plan = maintain(nodeimage, owners={spec.owner_key(JOB_A): False, spec.owner_key(JOB_B): True})
    (kept,) = (plan.spec.images or {})["nginx"].tags
    assert kept.owner_references == (JOB_B,)
    assert [t.uid for t in kept.trace_contexts or ()] == [JOB_B.uid]


def test_owner_with_unknown_existence_is_kept():
    nodeimage = a_nodeimage(images={"nginx": (a_tag(owners=(JOB_A,)),)})
    assert not maintain(nodeimage, owners={}).changed


def test_owner_refs_of_other_kinds_are_kept():
    other = ObjectReference(api_version="apps/v1", kind="Deployment", namespace="ns", name="d", uid="u")
    kruise = ObjectReference(
        api_version="apps.kruise.io/v1beta1", kind="ImagePullJob", namespace="ns", name="k", uid="k"
    )
    nodeimage = a_nodeimage(images={"nginx": (a_tag(owners=(other, kruise)),)})
    plan = maintain(nodeimage, owners={spec.owner_key(other): False, spec.owner_key(kruise): False})
    assert not plan.changed


def test_tag_without_any_owner_is_not_dropped():
    assert not maintain(a_nodeimage(images={"nginx": (a_tag(owners=None, ttl=300),)})).changed


def test_job_references_lists_only_our_jobs():
    other = ObjectReference(api_version="apps/v1", kind="Deployment", name="d", uid="u")
    nodeimage = a_nodeimage(images={"nginx": (a_tag("1", owners=(JOB_A, other)), a_tag("2", owners=(JOB_B,)))})
    assert spec.job_references(nodeimage) == {spec.owner_key(JOB_A), spec.owner_key(JOB_B)}


def test_ttl_counts_from_same_version_completion_and_expires():
    nodeimage = a_nodeimage(
        images={"nginx": (a_tag("1", ttl=300, version=2),)},
        statuses={"nginx": (a_status("1", version=2, completed=at(100)),)},
    )
    pending = maintain(nodeimage, now=at(250))
    assert not pending.changed
    assert pending.requeue_after == 150.0
    expired = maintain(nodeimage, now=at(400))
    assert expired.changed
    assert expired.spec.images is None


def test_ttl_ignores_a_status_of_another_version():
    nodeimage = a_nodeimage(
        images={"nginx": (a_tag("1", ttl=300, version=3),)},
        statuses={"nginx": (a_status("1", version=2, completed=at(0)),)},
    )
    plan = maintain(nodeimage, now=at(10_000))
    assert not plan.changed
    assert plan.requeue_after is None


def test_ttl_does_not_run_before_completion():
    nodeimage = a_nodeimage(
        images={"nginx": (a_tag("1", ttl=1),)},
        statuses={"nginx": (a_status("1", phase=ImagePullPhase.PULLING),)},
    )
    assert not maintain(nodeimage, now=at(10_000)).changed


def test_image_keeps_its_other_tags_when_one_expires():
    nodeimage = a_nodeimage(
        images={"nginx": (a_tag("1", ttl=10), a_tag("2", ttl=10))},
        statuses={"nginx": (a_status("1", completed=at(0)),)},
    )
    plan = maintain(nodeimage, now=at(20))
    assert tags_of(plan) == ["2"]


def test_tags_are_kept_sorted():
    nodeimage = a_nodeimage(images={"nginx": (a_tag("b"), a_tag("a"))})
    plan = maintain(nodeimage)
    assert plan.changed
    assert tags_of(plan) == ["a", "b"]
