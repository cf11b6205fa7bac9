"""The cluster's image inventory: which images each node holds, as its puller last reported, in memory.

Only the leader holds it (design §2); after a leader change it starts empty and fills as pullers report (a
node that has not reported is "unknown", never "has nothing"). Reports are sequenced per node (see
`inventory.proto`): a snapshot replaces the node's inventory; a delta applies only on top of the report just
before it, otherwise the puller is told to send a snapshot.

Memory is bounded per node: at most `max_images` images (a report with more is refused, so a broken puller
cannot exhaust the leader) and at most `max_names` repo tags plus repo digests per image (extra names are
dropped: an image with hundreds of tags is an oddity, not something a query needs). Each node's footprint is
estimated from the lengths of the strings it holds plus a fixed per-image overhead, and exported as a metric.

Each image is normalized once when reported (`logic.presence.keys_of`) and indexed by every reference and digest
it answers to, so a query costs one dictionary lookup per node. Thread-safe: reports arrive on gRPC worker
threads while queries run on others.

Nodes hold the same images: a base image, the platform's daemons, the images prepull itself puts everywhere.
Equal images are one object cluster-wide (normalized once), and nodes reporting the same set of images share
its maps (`canonical`): at 1,000 nodes with 200 images each, per-node copies were most of nodeimage_sync's
memory. The memory metric still counts each node's images as if held alone: it bounds what one node can cost.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from services.nodeimage_sync.logic import presence
from services.shared.canonical import Canonical
from services.shared.clock import Clock

PER_IMAGE_OVERHEAD_BYTES = 1100
"""Rough cost of the Python objects holding one image (dataclasses, tuples, frozensets, index entries), checked
against tracemalloc by a unit test."""


class InventoryLimitExceeded(ValueError):  # noqa: N818 -- reads as the condition; mapped to RESOURCE_EXHAUSTED
    """A report would make a node's inventory exceed its bound."""


@dataclass(frozen=True)
class NodeInventory:
    """One node's images as of its last accepted report."""

    node: str
    sequence: int
    reported_at: datetime
    images: Mapping[str, presence.InventoryImage] = field(default_factory=dict)
    keys: Mapping[str, presence.ImageKeys] = field(default_factory=dict)
    index: Mapping[str, str] = field(default_factory=dict)
    """Every normalized reference and digest an image answers to → that image's digest (see `indexed`)."""

    @property
    def image_bytes(self) -> int:
        """Sum of the reported image sizes."""
        return sum(image.size_bytes for image in self.images.values())

    @property
    def memory_bytes(self) -> int:
        """Estimated memory this inventory holds (see the module docstring)."""
        return sum(_footprint(image) for image in self.images.values())

    def find(self, query: presence.Query) -> presence.InventoryImage | None:
        """The image matching `query`, or None."""
        digest = self.index.get(query.digest if query.digest is not None else query.reference or "")
        return self.images.get(digest) if digest is not None else None


def indexed(
    *,
    node: str,
    sequence: int,
    reported_at: datetime,
    images: Mapping[str, presence.InventoryImage],
    known: Mapping[str, presence.ImageKeys] | None = None,
) -> NodeInventory:
    """A node's inventory with its lookup index; when two images answer to one name, the smaller digest wins.

    `known` holds keys already computed for unchanged images (a delta), so only new images are normalized.
    """
    previous = known or {}
    shared = _SHARED_SETS.get(frozenset(map(id, images.values())), functools.partial(_image_set, images, previous))
    return NodeInventory(
        node=node,
        sequence=sequence,
        reported_at=reported_at,
        images=shared.images,
        keys=shared.keys,
        index=shared.index,
    )


@dataclass(frozen=True)
class _ImageSet:
    """The maps of one set of images, shared by every node that reported exactly that set."""

    images: Mapping[str, presence.InventoryImage]
    keys: Mapping[str, presence.ImageKeys]
    index: Mapping[str, str]


def _image_set(images: Mapping[str, presence.InventoryImage], known: Mapping[str, presence.ImageKeys]) -> _ImageSet:
    keys = {digest: known.get(digest) or _keys_of(image) for digest, image in images.items()}
    index: dict[str, str] = {}
    for digest in sorted(keys, reverse=True):
        index.update(dict.fromkeys(keys[digest].references, digest))
        index.update(dict.fromkeys(keys[digest].digests, digest))
    return _ImageSet(images=dict(images), keys=keys, index=index)


def _keys_of(image: presence.InventoryImage) -> presence.ImageKeys:
    """`presence.keys_of`, computed once per distinct image however many nodes hold it."""
    return _SHARED_KEYS.get(_identity(image), functools.partial(presence.keys_of, image))


def _identity(image: presence.InventoryImage) -> tuple[str, tuple[str, ...], tuple[str, ...], int]:
    return (image.digest, image.repo_tags, image.repo_digests, image.size_bytes)


_SHARED_IMAGES: Canonical[tuple[str, tuple[str, ...], tuple[str, ...], int], presence.InventoryImage] = Canonical()
_SHARED_KEYS: Canonical[tuple[str, tuple[str, ...], tuple[str, ...], int], presence.ImageKeys] = Canonical()
_SHARED_SETS: Canonical[frozenset[int], _ImageSet] = Canonical()
"""Keyed by the identities of shared images, which the set's maps keep alive while the entry exists."""


@dataclass(frozen=True)
class ReportOutcome:
    """How a report was handled: applied or not, and the last sequence applied for the node."""

    applied: bool
    accepted_sequence: int


@dataclass(frozen=True)
class Totals:
    """Inventory size over all nodes, for metrics."""

    nodes: int
    images: int
    memory_bytes: int


class InventoryStore:
    """Per-node inventories; see the module docstring.

    Args:
        max_images: images kept per node.
        max_names: repo tags plus repo digests kept per image.
        clock: stamps `reported_at`.
        on_change: called with the node name after its inventory changed (outside the lock).
    """

    def __init__(
        self,
        *,
        max_images: int,
        max_names: int,
        clock: Clock,
        on_change: Callable[[str], None] | None = None,
    ) -> None:
        self._max_images = max_images
        self._max_names = max_names
        self._clock = clock
        self._on_change = on_change
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        """Serializes reports, so a delta is checked and applied against the same previous report."""
        self._nodes: dict[str, NodeInventory] = {}
        self._memory: dict[str, int] = {}

    def apply_snapshot(self, node: str, sequence: int, images: Iterable[presence.InventoryImage]) -> ReportOutcome:
        """Replace the node's inventory with `images`.

        Raises:
            InventoryLimitExceeded: more than `max_images` images.
        """
        bounded = {image.digest: self._bounded(image) for image in images if image.digest}
        self._check_size(node, len(bounded))
        inventory = indexed(node=node, sequence=sequence, reported_at=self._clock.now(), images=bounded)
        with self._write_lock:
            self._store(inventory)
        return ReportOutcome(applied=True, accepted_sequence=sequence)

    def apply_delta(
        self,
        node: str,
        sequence: int,
        *,
        upserted: Iterable[presence.InventoryImage],
        removed_digests: Iterable[str],
    ) -> ReportOutcome:
        """Apply changes on top of the report numbered `sequence - 1`; otherwise apply nothing.

        Raises:
            InventoryLimitExceeded: the result would hold more than `max_images` images.
        """
        with self._write_lock:
            return self._apply_delta(node, sequence, upserted=upserted, removed_digests=removed_digests)

    def _apply_delta(
        self,
        node: str,
        sequence: int,
        *,
        upserted: Iterable[presence.InventoryImage],
        removed_digests: Iterable[str],
    ) -> ReportOutcome:
        with self._lock:
            current = self._nodes.get(node)
        if current is None or sequence != current.sequence + 1:
            return ReportOutcome(applied=False, accepted_sequence=current.sequence if current else 0)
        images = dict(current.images)
        known = dict(current.keys)
        for digest in removed_digests:
            images.pop(digest, None)
        for image in upserted:
            if image.digest:
                images[image.digest] = self._bounded(image)
                known.pop(image.digest, None)
        self._check_size(node, len(images))
        updated = indexed(node=node, sequence=sequence, reported_at=self._clock.now(), images=images, known=known)
        self._store(updated)
        return ReportOutcome(applied=True, accepted_sequence=sequence)

    def get(self, node: str) -> NodeInventory | None:
        """The node's inventory, or None if it has not reported."""
        with self._lock:
            return self._nodes.get(node)

    def forget(self, node: str) -> None:
        """Drop a node's inventory (its Node is gone)."""
        with self._lock:
            removed = self._nodes.pop(node, None)
            self._memory.pop(node, None)
        if removed is not None and self._on_change is not None:
            self._on_change(node)

    def clear(self) -> None:
        """Drop every inventory (leadership lost: the next leader starts empty anyway)."""
        with self._lock:
            self._nodes.clear()
            self._memory.clear()

    def totals(self) -> Totals:
        """Nodes, images and estimated memory over all inventories."""
        with self._lock:
            images = sum(len(inventory.images) for inventory in self._nodes.values())
            return Totals(nodes=len(self._nodes), images=images, memory_bytes=sum(self._memory.values()))

    def _bounded(self, image: presence.InventoryImage) -> presence.InventoryImage:
        """`image` within the name bound, as the one object all nodes holding it share."""
        tags = image.repo_tags[: self._max_names]
        digests = image.repo_digests[: max(self._max_names - len(tags), 0)]
        if (tags, digests) != (image.repo_tags, image.repo_digests):
            image = replace(image, repo_tags=tags, repo_digests=digests)
        return _SHARED_IMAGES.get(_identity(image), lambda: image)

    def _check_size(self, node: str, count: int) -> None:
        if count > self._max_images:
            raise InventoryLimitExceeded(
                f"inventory of node {node} would hold {count} images; at most {self._max_images} are kept"
            )

    def _store(self, inventory: NodeInventory) -> None:
        with self._lock:
            self._nodes[inventory.node] = inventory
            self._memory[inventory.node] = inventory.memory_bytes
        if self._on_change is not None:
            self._on_change(inventory.node)


def _footprint(image: presence.InventoryImage) -> int:
    names = sum(len(name) for name in (*image.repo_tags, *image.repo_digests))
    return PER_IMAGE_OVERHEAD_BYTES + len(image.digest) + 2 * names
