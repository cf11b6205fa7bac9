"""Which Node events deserve a reconcile of the Node's NodeImage, and when (upstream §4.1's event handler).

Nodes change all the time (the kubelet's status heartbeats), and at thousands of nodes reconciling each
NodeImage on every heartbeat would be most of our work for nothing. So a Node event enqueues its name only
when it can change the outcome: a Ready Node without a NodeImage (after the rest of the creation delay), a
Node whose labels differ from its NodeImage's, or a Node on its way out whose NodeImage still exists.
Virtual-kubelet Nodes are ignored altogether.

A NodeImage update enqueues its name unless nothing nodeimage_sync decides on changed
(`nodeimage_update_matters`): a puller recording the spec generation it has seen (`status.observedGeneration`,
its write right after every spec change) changes nothing any decision reads.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from services.nodeimage_sync.logic.lifecycle import NodeFacts
from services.shared.api.nodeimage import NodeImage, NodeImageStatus

__all__ = ["after_node_change", "after_node_delete", "nodeimage_update_matters"]

IGNORED_STATUS_FIELDS = frozenset({"observed_generation"})
"""`NodeImageStatus` fields no decision reads (the puller's record of the spec generation it acted on)."""
DECIDING_METADATA_FIELDS = ("name", "uid", "labels", "deletion_timestamp")
"""`ObjectMeta` fields a decision reads: which object, whose labels (fake or mirrored), whether it is going."""

_IGNORED_STATUS_DEFAULTS: dict[str, Any] = {
    each.name: each.default for each in dataclasses.fields(NodeImageStatus) if each.name in IGNORED_STATUS_FIELDS
}
"""The ignored fields at their defaults: two statuses set so compare equal whatever those fields held."""


def after_node_change(
    *, node: NodeFacts, nodeimage_labels: Mapping[str, str] | None, now: datetime, creation_delay: timedelta
) -> float | None:
    """Seconds until the Node's name should be reconciled after it was added or updated; None: not at all.

    Args:
        node: the Node as it is now.
        nodeimage_labels: the labels of its NodeImage, or None when it has no NodeImage.
        now: the current wall-clock time.
        creation_delay: how long a Node must have been Ready before it gets a NodeImage.
    """
    if node.virtual:
        return None
    if nodeimage_labels is None:
        if node.deleting or not node.ready:
            return None
        if node.ready_since is None:
            return 0.0
        return max((node.ready_since + creation_delay - now).total_seconds(), 0.0)
    if node.deleting or dict(nodeimage_labels) != dict(node.labels):
        return 0.0
    return None


def after_node_delete(*, node: NodeFacts, has_nodeimage: bool) -> bool:
    """Whether a deleted Node's name should be reconciled (to delete its NodeImage)."""
    return has_nodeimage and not node.virtual


def nodeimage_update_matters(old: NodeImage, new: NodeImage) -> bool:
    """Whether a NodeImage update can change any decision: its metadata that decisions read, spec, or status.

    False only when `old` and `new` differ in nothing but what no decision reads (resourceVersion, managed
    fields, annotations, `status.observedGeneration`). `old` was decided on already or is queued, so the
    update holds nothing new.
    """
    return _deciding_view(old) != _deciding_view(new)


def _deciding_view(nodeimage: NodeImage) -> tuple[object, ...]:
    metadata = nodeimage.metadata
    status = nodeimage.status
    if status is not None:
        status = dataclasses.replace(status, **_IGNORED_STATUS_DEFAULTS)
    return (*(getattr(metadata, key) for key in DECIDING_METADATA_FIELDS), nodeimage.spec, status)
