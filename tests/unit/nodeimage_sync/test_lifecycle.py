"""NodeImage creation, deletion and the creation delay (upstream §4.1), decided without a cluster."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from services.nodeimage_sync.logic import lifecycle, triggers
from services.nodeimage_sync.logic.lifecycle import NodeFacts, Step
from services.shared.api import constants
from tests.unit.nodeimage_sync.builders import T0, a_nodeimage, at

DELAY = timedelta(seconds=30)
READY_AT_T0 = NodeFacts(name="node-a", labels={"zone": "a"}, ready=True, ready_since=T0)
FAKE = a_nodeimage(labels={constants.LABEL_FAKE_NODE_IMAGE: "true"})
DELETING = replace(a_nodeimage(), metadata=replace(a_nodeimage().metadata, deletion_timestamp=T0))


@pytest.mark.parametrize(
    ("node", "nodeimage", "now", "expected"),
    [
        pytest.param(READY_AT_T0, None, at(31), lifecycle.LifecyclePlan(Step.CREATE), id="ready-long-enough"),
        pytest.param(READY_AT_T0, None, at(30), lifecycle.LifecyclePlan(Step.CREATE), id="ready-exactly-delay"),
        pytest.param(READY_AT_T0, None, at(10), lifecycle.LifecyclePlan(Step.WAIT, 20.0), id="inside-delay"),
        pytest.param(
            replace(READY_AT_T0, ready=False), None, at(99), lifecycle.LifecyclePlan(Step.NOTHING), id="not-ready"
        ),
        pytest.param(
            replace(READY_AT_T0, ready_since=None),
            None,
            at(0),
            lifecycle.LifecyclePlan(Step.CREATE),
            id="ready-since-unknown",
        ),
        pytest.param(
            replace(READY_AT_T0, labels={"type": "virtual-kubelet"}),
            None,
            at(99),
            lifecycle.LifecyclePlan(Step.NOTHING),
            id="virtual-kubelet-never-created",
        ),
        pytest.param(None, a_nodeimage(), at(0), lifecycle.LifecyclePlan(Step.DELETE), id="node-gone"),
        pytest.param(
            replace(READY_AT_T0, deleting=True),
            a_nodeimage(),
            at(0),
            lifecycle.LifecyclePlan(Step.DELETE),
            id="node-deleting",
        ),
        pytest.param(None, FAKE, at(0), lifecycle.LifecyclePlan(Step.MAINTAIN), id="fake-kept-without-node"),
        pytest.param(None, DELETING, at(0), lifecycle.LifecyclePlan(Step.NOTHING), id="nodeimage-already-deleting"),
        pytest.param(None, None, at(0), lifecycle.LifecyclePlan(Step.NOTHING), id="neither"),
        pytest.param(READY_AT_T0, a_nodeimage(), at(0), lifecycle.LifecyclePlan(Step.MAINTAIN), id="both-exist"),
        pytest.param(READY_AT_T0, DELETING, at(0), lifecycle.LifecyclePlan(Step.NOTHING), id="both-but-deleting"),
    ],
)
def test_plan_lifecycle(node, nodeimage, now, expected):
    assert lifecycle.plan_lifecycle(node=node, nodeimage=nodeimage, now=now, creation_delay=DELAY) == expected


def test_node_facts_from_raw_node():
    raw = {
        "metadata": {"name": "n1", "labels": {"a": "b"}, "deletionTimestamp": "2024-05-01T10:00:00Z"},
        "status": {
            "conditions": [
                {"type": "MemoryPressure", "status": "False"},
                {"type": "Ready", "status": "True", "lastTransitionTime": "2024-05-01T10:00:00Z"},
            ]
        },
    }
    facts = NodeFacts.from_node(raw)
    assert facts == NodeFacts(name="n1", labels={"a": "b"}, ready=True, ready_since=T0, deleting=True)


def test_node_without_ready_condition_is_not_ready():
    assert not NodeFacts.from_node({"metadata": {"name": "n1"}}).ready


@pytest.mark.parametrize(
    ("node", "labels", "now", "expected"),
    [
        pytest.param(READY_AT_T0, None, at(10), 20.0, id="no-nodeimage-ready-wait-rest-of-delay"),
        pytest.param(READY_AT_T0, None, at(40), 0.0, id="no-nodeimage-ready-long-ago"),
        pytest.param(replace(READY_AT_T0, ready=False), None, at(40), None, id="no-nodeimage-not-ready"),
        pytest.param(READY_AT_T0, {"zone": "a"}, at(40), None, id="labels-equal-heartbeat-ignored"),
        pytest.param(READY_AT_T0, {"zone": "b"}, at(40), 0.0, id="labels-differ"),
        pytest.param(replace(READY_AT_T0, deleting=True), {"zone": "a"}, at(40), 0.0, id="deleting"),
        pytest.param(replace(READY_AT_T0, labels={"type": "virtual-kubelet"}), None, at(40), None, id="virtual"),
    ],
)
def test_after_node_change(node, labels, now, expected):
    assert triggers.after_node_change(node=node, nodeimage_labels=labels, now=now, creation_delay=DELAY) == expected


def test_after_node_delete_only_with_nodeimage():
    assert triggers.after_node_delete(node=READY_AT_T0, has_nodeimage=True)
    assert not triggers.after_node_delete(node=READY_AT_T0, has_nodeimage=False)


def test_node_facts_are_read_from_a_full_node_and_keep_nothing_else():
    node = {
        "metadata": {"name": "node-a", "labels": {"zone": "a"}, "deletionTimestamp": "2024-05-01T10:00:00Z"},
        "status": {
            "conditions": [
                {"type": "DiskPressure", "status": "False", "lastTransitionTime": "2024-05-01T09:00:00Z"},
                {"type": "Ready", "status": "True", "lastTransitionTime": "2024-05-01T10:00:00Z"},
            ],
            "images": [{"names": ["nginx:1.25"], "sizeBytes": 70_000_000}],
        },
    }
    facts = NodeFacts.from_node(node)
    assert facts == NodeFacts(name="node-a", labels={"zone": "a"}, ready=True, ready_since=T0, deleting=True)
    assert not hasattr(facts, "__dict__"), "a cached Node should be its facts and nothing more"
