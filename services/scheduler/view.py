"""The scheduler's in-memory view of the cluster: informer stores read as typed objects.

NodeImages are cached typed and only typed: the NodeImage informer parses each one as it arrives and keeps
nothing else. With hundreds of jobs each NodeImage holds hundreds of tag entries, and its dict is four times
the size of the typed object (617 against 160 KiB at 200 tags); keeping both was 1.8 GB at 1,000 nodes.
Jobs stay dicts memoised as typed objects by resourceVersion, because a job that does not parse must still
be reconciled to report why.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from services.scheduler.logic.targets import PodPlacement
from services.shared.api import constants, wire
from services.shared.api.imagelistpulljob import ImageListPullJob
from services.shared.api.imagepulljob import ImagePullJob
from services.shared.api.nodeimage import NodeImage
from services.shared.kube import informer, objects, resources

__all__ = ["ClusterView", "NodeImageCache", "TypedStore", "node_image_informer", "pod_placement"]

T = TypeVar("T", bound=wire.WireObject)


class TypedStore(Generic[T]):
    """An informer's store, read as `T`, with parses memoised per (key, resourceVersion)."""

    def __init__(self, source: informer.Informer[objects.RawObject], parse: Callable[[objects.RawObject], T]) -> None:
        self.informer = source
        self._parse = parse
        self._memo: dict[str, tuple[str, T]] = {}
        self._lock = threading.Lock()

    def raw(self, key: str) -> objects.RawObject | None:
        """The stored dict for `key` (do not modify it)."""
        return self.informer.store.get(key)

    def get(self, key: str) -> T | None:
        """The typed object for `key`, or None when the cache does not hold it."""
        raw = self.informer.store.get(key)
        return None if raw is None else self.typed(raw)

    def typed(self, raw: objects.RawObject) -> T:
        """`raw` parsed, reusing an earlier parse of the same resourceVersion."""
        key = objects.object_key(raw)
        version = str((raw.get("metadata") or {}).get("resourceVersion") or "")
        with self._lock:
            memo = self._memo.get(key)
        if memo is not None and memo[0] == version and version:
            return memo[1]
        parsed = self._parse(raw)
        with self._lock:
            self._memo[key] = (version, parsed)
        return parsed

    def forget(self, key: str) -> None:
        """Drop the memo of a deleted object."""
        with self._lock:
            self._memo.pop(key, None)

    def all(self) -> list[T]:
        """Every stored object, typed."""
        return [self.typed(raw) for raw in self.informer.store.list()]


def pod_placement(raw: objects.RawObject) -> PodPlacement:
    """What target selection needs from a Pod dict."""
    metadata = raw.get("metadata") or {}
    spec = raw.get("spec") or {}
    phase = (raw.get("status") or {}).get("phase")
    return PodPlacement(
        namespace=str(metadata.get("namespace") or ""),
        name=str(metadata.get("name") or ""),
        node_name=str(spec.get("nodeName") or ""),
        labels=dict(metadata.get("labels") or {}),
        active=phase not in ("Succeeded", "Failed") and not metadata.get("deletionTimestamp"),
    )


def node_image_informer(api: informer.ListerWatcher) -> informer.Informer[NodeImage]:
    """Every NodeImage, stored parsed; one that does not parse is left out (and logged) until it is fixed."""
    return informer.Informer(
        api, resources.NODE_IMAGES, transform=NodeImage.from_dict, page_size=constants.NODE_IMAGE_LIST_PAGE_SIZE
    )


class NodeImageCache:
    """Typed NodeImages by name, as the NodeImage informer stores them."""

    def __init__(self, source: informer.Informer[NodeImage]) -> None:
        self.informer = source

    def get(self, name: str) -> NodeImage | None:
        """The cached NodeImage called `name`, or None."""
        return self.informer.store.get(name)

    def all(self) -> list[NodeImage]:
        """Every cached NodeImage."""
        return self.informer.store.list()


class ClusterView:
    """The typed stores the controllers and servicers read."""

    def __init__(
        self,
        *,
        jobs: informer.Informer[objects.RawObject],
        list_jobs: informer.Informer[objects.RawObject],
        node_images: informer.Informer[NodeImage],
        pods: informer.Informer[objects.RawObject],
    ) -> None:
        self.jobs: TypedStore[ImagePullJob] = TypedStore(jobs, ImagePullJob.from_dict)
        self.list_jobs: TypedStore[ImageListPullJob] = TypedStore(list_jobs, ImageListPullJob.from_dict)
        self.node_images = NodeImageCache(node_images)
        self.pods = pods

    @property
    def informers(self) -> tuple[informer.Informer[Any], ...]:
        """All informers, to start, wait for and stop together."""
        return (self.jobs.informer, self.list_jobs.informer, self.node_images.informer, self.pods)

    def node_image_map(self) -> dict[str, NodeImage]:
        """Every NodeImage by name."""
        return {node.metadata.name: node for node in self.node_images.all()}

    def pods_in(self, namespace: str) -> list[PodPlacement]:
        """Placements of the cached pods of one namespace."""
        return [
            pod_placement(raw)
            for raw in self.pods.store.list()
            if (raw.get("metadata") or {}).get("namespace") == namespace
        ]
