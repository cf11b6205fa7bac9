"""Decoded values that repeat across objects are shared, and the sharing table does not keep dead values."""

from __future__ import annotations

import gc
from typing import Any

from services.shared.api import wire
from services.shared.api.meta import ObjectReference
from services.shared.api.nodeimage import NodeImage


def node_image(name: str, job: str, *, uid: str = "u-1") -> dict[str, Any]:
    owner = {"apiVersion": "apps.kruise.io/v1alpha1", "kind": "ImagePullJob", "namespace": "ns", "name": job}
    owner["uid"] = uid
    tag = {
        "tag": "v1",
        "ownerReferences": [owner],
        "pullPolicy": {"timeoutSeconds": 600, "backoffLimit": 3},
        "traceContexts": [{"uid": uid, "traceparent": f"00-{'a' * 32}-{'b' * 16}-01"}],
    }
    return {"metadata": {"name": name}, "spec": {"images": {"nginx": {"tags": [tag]}}}}


def tag_of(node: NodeImage) -> Any:
    images = node.spec.images or {}
    return images["nginx"].tags[0]


def test_one_jobs_owner_reference_trace_and_policy_are_one_object_on_every_node() -> None:
    first, second = (NodeImage.from_dict(node_image(name, "job-a")) for name in ("n1", "n2"))
    assert tag_of(first) is not tag_of(second)
    assert tag_of(first).owner_references is tag_of(second).owner_references
    assert tag_of(first).pull_policy is tag_of(second).pull_policy
    assert tag_of(first).trace_contexts is tag_of(second).trace_contexts


def test_different_values_stay_different_and_unmodelled_keys_are_never_shared() -> None:
    a, b = (NodeImage.from_dict(node_image("n", job, uid=job)) for job in ("job-a", "job-b"))
    assert tag_of(a).owner_references != tag_of(b).owner_references
    with_extra = {"kind": "ImagePullJob", "name": "job-a", "future": 1}
    one, two = ObjectReference.from_dict(with_extra), ObjectReference.from_dict(with_extra)
    assert one is not two and one.extra == {"future": 1}
    assert one.to_dict() == with_extra


def test_values_nobody_holds_are_dropped_from_the_table_as_it_grows() -> None:
    kept = [ObjectReference.from_dict({"name": f"kept-{i}", "uid": "keep"}) for i in range(10)]
    for i in range(3 * 4096):
        ObjectReference.from_dict({"name": f"gone-{i}", "uid": "drop"})
    gc.collect()
    assert len(wire._SHARED) < 2 * 4096
    again = [ObjectReference.from_dict({"name": f"kept-{i}", "uid": "keep"}) for i in range(10)]
    assert all(decoded is held for decoded, held in zip(again, kept, strict=True))
