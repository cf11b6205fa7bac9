"""Pulls in flight across the cluster, for the cluster-wide and per-registry caps (design §5).

A tag entry is in flight on a node while its status entry for the same version is not Succeeded or Failed
(absent, Waiting, Pulling, or for an older version), the same rule that makes a node *active* for a job.

With a cap, every reconcile that may start nodes counts over every tag entry of every NodeImage: 200 jobs on
3,000 nodes are 600,000 entries, a quarter of a second of CPU per reconcile. NodeImages are cached as frozen
objects that a change replaces, so `InFlightCounter` keeps each node's count with the object it was counted
from and counts again only the nodes whose object changed since the last count.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from services.shared.api import imageref
from services.shared.api.nodeimage import ImagePullPhase, ImageStatus, ImageTagSpec, NodeImage

__all__ = ["InFlight", "InFlightCounter", "count_in_flight", "node_in_flight", "registry_of"]

_FINAL = frozenset({ImagePullPhase.SUCCEEDED, ImagePullPhase.FAILED})


@dataclass(frozen=True)
class InFlight:
    """Pulls in flight in total and per registry host."""

    total: int = 0
    by_registry: Counter[str] = field(default_factory=Counter)


_NOTHING = InFlight()
"""A node with nothing in flight (shared: read only)."""


def registry_of(image: str, tag: str) -> str:
    """The registry host of a NodeImage entry ("" when it does not parse)."""
    try:
        return imageref.from_nodeimage_entry(image, tag).registry
    except imageref.InvalidImageReference:
        return ""


def count_in_flight(nodes: Iterable[NodeImage]) -> InFlight:
    """Count the unfinished tag entries of every node."""
    return _sum(node_in_flight(node) for node in nodes)


def node_in_flight(node: NodeImage) -> InFlight:
    """Count the unfinished tag entries of one node."""
    images = node.spec.images
    if not images:
        return _NOTHING
    statuses = node.status.image_statuses if node.status else None
    by_registry: Counter[str] = Counter()
    for image, spec in images.items():
        reported = statuses.get(image) if statuses else None
        for entry in spec.tags:
            if not _finished(entry, reported):
                by_registry[registry_of(image, entry.tag)] += 1
    return InFlight(by_registry.total(), by_registry) if by_registry else _NOTHING


class InFlightCounter:
    """`count_in_flight` over successive snapshots of the cache, counting again only the changed NodeImages.

    Not thread-safe: the reconciler counts under its caps lock.
    """

    def __init__(self) -> None:
        self._counted: dict[str, tuple[NodeImage, InFlight]] = {}

    def count(self, nodes: Sequence[NodeImage]) -> InFlight:
        """What `count_in_flight(nodes)` gives; forgets the nodes that are gone."""
        counted: dict[str, tuple[NodeImage, InFlight]] = {}
        for node in nodes:
            name = node.metadata.name
            previous = self._counted.get(name)
            # Identity, not equality: the cache replaces a changed NodeImage (and comparing two big NodeImages
            # costs about as much as counting one); the kept reference stops the old object's id being reused.
            unchanged = previous is not None and previous[0] is node
            counted[name] = (node, previous[1] if previous is not None and unchanged else node_in_flight(node))
        self._counted = counted
        return _sum(each for _, each in counted.values())


def _finished(entry: ImageTagSpec, reported: ImageStatus | None) -> bool:
    """Whether the node reported `entry` (at its version) Succeeded or Failed; the last status entry for the
    tag counts, should there be several."""
    for status in reversed(reported.tags) if reported is not None else ():
        if status.tag == entry.tag:
            return status.version == entry.version and status.phase in _FINAL
    return False


def _sum(counts: Iterable[InFlight]) -> InFlight:
    total = 0
    by_registry: Counter[str] = Counter()
    for each in counts:
        if each.total:
            total += each.total
            by_registry.update(each.by_registry)
    return InFlight(total, by_registry)
