"""One NodeImage per Node: when to create it, when to delete it, and when to leave it to maintenance.

Upstream (§4.1) creates a Node's NodeImage only once the Node has been Ready for a while (30 s by default,
measured from the Ready condition's `lastTransitionTime`), so a node that flaps during bootstrap does not get
jobs assigned before its runtime works. The NodeImage goes when its Node goes, unless it carries the
fake-nodeimage label: such NodeImages stand for nodes that exist only in tests and simulations, and are
maintained (owners, TTL, timeouts) like any other, just without labels to mirror.

We create the NodeImage with the Node's labels already in place (upstream creates it bare and copies the
labels on the next pass): the scheduler selects nodes by NodeImage labels, so a NodeImage without them would
briefly be invisible to every job with a selector.
"""

from __future__ import annotations

import enum
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from services.shared.api import constants, timefmt
from services.shared.api.nodeimage import NodeImage

__all__ = ["LifecyclePlan", "NodeFacts", "Step", "is_fake", "plan_lifecycle"]


@dataclass(frozen=True, slots=True)
class NodeFacts:
    """What nodeimage_sync needs to know about a Node, read once from the raw object.

    This is all the Node informer keeps of a Node: a real Node's dict is 10-50 KiB (`status.images` lists every
    image it holds, with sizes), these facts are a few hundred bytes.
    """

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    ready: bool = False
    """The Node's Ready condition is True."""
    ready_since: datetime | None = None
    """When the Ready condition last changed (its `lastTransitionTime`); None when unknown."""
    deleting: bool = False
    """The Node has a deletionTimestamp."""

    @property
    def virtual(self) -> bool:
        """Labelled `type=virtual-kubelet`: no runtime to pull into, so upstream gives it no NodeImage."""
        key, value = constants.NODE_LABEL_VIRTUAL_KUBELET
        return self.labels.get(key) == value

    @classmethod
    def from_node(cls, node: Mapping[str, Any]) -> NodeFacts:
        """Read a core/v1 Node as the apiserver returns it (a JSON dict).

        Label keys and values are interned: every Node carries the same well-known keys (`kubernetes.io/os`,
        topology labels) and mostly the same values, so a thousand Nodes share one copy of each.
        """
        metadata = node.get("metadata") or {}
        return cls(
            name=str(metadata.get("name", "")),
            labels={
                sys.intern(str(key)): sys.intern(str(value)) for key, value in (metadata.get("labels") or {}).items()
            },
            ready=_ready_condition(node).get("status") == "True",
            ready_since=_transition_time(_ready_condition(node)),
            deleting=metadata.get("deletionTimestamp") is not None,
        )


def _ready_condition(node: Mapping[str, Any]) -> Mapping[str, Any]:
    """The Node's Ready condition, or {} when it reports none."""
    for condition in (node.get("status") or {}).get("conditions") or ():
        if isinstance(condition, Mapping) and condition.get("type") == "Ready":
            return condition
    return {}


def _transition_time(condition: Mapping[str, Any]) -> datetime | None:
    since = condition.get("lastTransitionTime")
    try:
        return timefmt.parse_time(since) if isinstance(since, str) else None
    except ValueError:
        return None


class Step(enum.Enum):
    """What to do with a Node's NodeImage."""

    NOTHING = "nothing"
    CREATE = "create"
    WAIT = "wait"
    """The Node is Ready but not for long enough yet; look again after `LifecyclePlan.wait_seconds`."""
    DELETE = "delete"
    MAINTAIN = "maintain"
    """The NodeImage stays: maintain its spec and status (with `node` None for a fake NodeImage)."""


@dataclass(frozen=True)
class LifecyclePlan:
    """The step, and for `WAIT` how long."""

    step: Step
    wait_seconds: float = 0.0


def is_fake(nodeimage: NodeImage) -> bool:
    """Carries the fake-nodeimage label (any value): kept although no Node backs it."""
    return constants.LABEL_FAKE_NODE_IMAGE in (nodeimage.metadata.labels or {})


def plan_lifecycle(
    *, node: NodeFacts | None, nodeimage: NodeImage | None, now: datetime, creation_delay: timedelta
) -> LifecyclePlan:
    """Decide the NodeImage's fate from the Node (None: no such Node) and the NodeImage (None: none yet).

    Args:
        node: the Node, or None when it does not exist.
        nodeimage: the NodeImage of the same name, or None.
        now: the current wall-clock time.
        creation_delay: how long a Node must have been Ready before it gets a NodeImage.
    """
    if node is None or node.deleting:
        if nodeimage is None or nodeimage.metadata.deletion_timestamp is not None:
            return LifecyclePlan(Step.NOTHING)
        return LifecyclePlan(Step.MAINTAIN if is_fake(nodeimage) else Step.DELETE)
    if nodeimage is None:
        return _plan_creation(node, now=now, creation_delay=creation_delay)
    if nodeimage.metadata.deletion_timestamp is not None:
        return LifecyclePlan(Step.NOTHING)
    return LifecyclePlan(Step.MAINTAIN)


def _plan_creation(node: NodeFacts, *, now: datetime, creation_delay: timedelta) -> LifecyclePlan:
    if node.virtual or not node.ready:
        return LifecyclePlan(Step.NOTHING)
    if node.ready_since is None:  # Ready, but since when is unknown: long enough
        return LifecyclePlan(Step.CREATE)
    remaining = (node.ready_since + creation_delay - now).total_seconds()
    if remaining > 0:
        return LifecyclePlan(Step.WAIT, wait_seconds=remaining)
    return LifecyclePlan(Step.CREATE)
