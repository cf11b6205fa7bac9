"""Which NodeImages a job targets (upstream-behaviour.md §2.3), recomputed on every reconcile.

* `podSelector`: the nodes running *active* pods (not Succeeded/Failed, not being deleted, scheduled) of the
  job's namespace whose labels match; an empty pod selector matches every pod.
* `selector` absent: every NodeImage.
* `selector.names`: exactly those names that exist (missing ones are skipped; an empty list targets nothing).
* otherwise the label selector against NodeImage labels (which mirror Node labels); `{}` targets all.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from services.scheduler.logic import labels
from services.shared.api.imagepulljob import ImagePullJobSpec
from services.shared.api.nodeimage import NodeImage

__all__ = ["PodPlacement", "node_matches_spec", "select_targets"]


@dataclass(frozen=True)
class PodPlacement:
    """What target selection needs to know about one pod."""

    namespace: str
    name: str
    node_name: str
    labels: Mapping[str, str]
    active: bool
    """Scheduled, not Succeeded/Failed and not being deleted."""


def select_targets(
    spec: ImagePullJobSpec,
    namespace: str,
    node_images: Mapping[str, NodeImage],
    pods: Iterable[PodPlacement],
) -> list[NodeImage]:
    """The NodeImages `spec` targets, sorted by name."""
    if spec.pod_selector is not None:
        nodes = {
            pod.node_name
            for pod in pods
            if pod.active
            and pod.node_name
            and pod.namespace == namespace
            and labels.matches(spec.pod_selector, pod.labels)
        }
        names: Iterable[str] = nodes
    elif spec.selector is None:
        names = node_images.keys()
    elif spec.selector.names is not None:
        names = set(spec.selector.names)
    else:
        selector = spec.selector
        names = [name for name, node in node_images.items() if labels.matches(selector, node.metadata.labels)]
    return [node_images[name] for name in sorted(names) if name in node_images]


def node_matches_spec(
    spec: ImagePullJobSpec, namespace: str, node: NodeImage, pods_on_node: Iterable[PodPlacement]
) -> bool:
    """Whether one NodeImage is among `spec`'s targets (used to decide which jobs a node change wakes)."""
    return bool(select_targets(spec, namespace, {node.metadata.name: node}, pods_on_node))
