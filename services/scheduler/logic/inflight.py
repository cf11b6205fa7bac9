"""Pulls in flight across the cluster, for the cluster-wide and per-registry caps (design §5).

A tag entry is in flight on a node while its status entry for the same version is not Succeeded or Failed
(absent, Waiting, Pulling, or for an older version), the same rule that makes a node *active* for a job.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from services.shared.api import imageref
from services.shared.api.nodeimage import ImagePullPhase, NodeImage

__all__ = ["InFlight", "count_in_flight", "registry_of"]

_FINAL = frozenset({ImagePullPhase.SUCCEEDED, ImagePullPhase.FAILED})


@dataclass(frozen=True)
class InFlight:
    """Pulls in flight in total and per registry host."""

    total: int = 0
    by_registry: Counter[str] = field(default_factory=Counter)


def registry_of(image: str, tag: str) -> str:
    """The registry host of a NodeImage entry ("" when it does not parse)."""
    try:
        return imageref.from_nodeimage_entry(image, tag).registry
    except imageref.InvalidImageReference:
        return ""


def count_in_flight(nodes: Iterable[NodeImage]) -> InFlight:
    """Count the unfinished tag entries of every node."""
    by_registry: Counter[str] = Counter()
    total = 0
    for node in nodes:
        statuses = (node.status.image_statuses or {}) if node.status else {}
        for image, spec in (node.spec.images or {}).items():
            reported = {t.tag: t for t in statuses[image].tags} if image in statuses else {}
            for entry in spec.tags:
                status = reported.get(entry.tag)
                if status is None or status.version != entry.version or status.phase not in _FINAL:
                    total += 1
                    by_registry[registry_of(image, entry.tag)] += 1
    return InFlight(total, by_registry)
