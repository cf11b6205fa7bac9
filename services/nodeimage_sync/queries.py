"""The application side of `NodeInventory`: node selection, paging, reports and presence, with no protobuf.

Nodes are the NodeImages in the informer's cache (one per Node, same name and labels), so every query is
answered from memory, without an apiserver round trip. The servicer converts requests to these calls and
results back to messages, nothing more.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from services.nodeimage_sync.inventory import InventoryStore, NodeInventory, ReportOutcome
from services.nodeimage_sync.logic import labelselector, presence
from services.shared.api.nodeimage import NodeImage
from services.shared.auth.errors import PermissionDenied
from services.shared.kube import store

DEFAULT_PAGE_SIZE = 500
MAX_PAGE_SIZE = 5000


class InvalidPageToken(ValueError):  # noqa: N818 -- reads as the condition; mapped to INVALID_ARGUMENT
    """The page token was not produced by this server."""


@dataclass(frozen=True)
class NodeSelection:
    """Which nodes a request is about: a label selector, exact names, or (neither) all."""

    selector: labelselector.Selector | None = None
    names: tuple[str, ...] | None = None

    def admits(self, name: str, labels: Mapping[str, str]) -> bool:
        """Whether the node `name` with `labels` is selected."""
        if self.names is not None:
            return name in self.names
        return self.selector is None or self.selector.matches(labels)


@dataclass(frozen=True)
class NodeView:
    """A node as NodeInventory shows it."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    """The cached NodeImage's labels themselves, not a copy: read-only, like everything in the cache."""
    inventory: NodeInventory | None = None


@dataclass(frozen=True)
class Presence:
    """The answer to "which nodes hold image X"."""

    normalized: str
    present: tuple[tuple[NodeView, presence.InventoryImage], ...]
    absent: tuple[str, ...]
    unknown: tuple[str, ...]


class NodeQueries:
    """Answers NodeInventory calls from the NodeImage cache and the inventory.

    Args:
        nodeimages: the NodeImage informer's store.
        inventory: the reported inventories.
    """

    def __init__(self, *, nodeimages: store.Store[NodeImage], inventory: InventoryStore) -> None:
        self._nodeimages = nodeimages
        self._inventory = inventory

    def view(self, name: str) -> NodeView | None:
        """The node `name`, or None when it has no NodeImage."""
        nodeimage = self._nodeimages.get(name)
        return None if nodeimage is None else self._view(nodeimage)

    def select(self, selection: NodeSelection) -> list[NodeView]:
        """Every selected node, sorted by name."""
        if selection.names is not None:
            found = [each for each in (self._nodeimages.get(name) for name in selection.names) if each is not None]
        else:
            found = self._nodeimages.list()
        views = (self._view(each) for each in found)
        return sorted((v for v in views if selection.admits(v.name, v.labels)), key=lambda v: v.name)

    def page(self, selection: NodeSelection, *, page_size: int, page_token: str) -> tuple[list[NodeView], str]:
        """One page of `select(selection)`: nodes after `page_token` (a node name), and the next token.

        Raises:
            InvalidPageToken: the token is not a node name this server could have returned.
        """
        if len(page_token) > 253:
            raise InvalidPageToken("invalid page token")
        size = min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        remaining = [view for view in self.select(selection) if view.name > page_token]
        page = remaining[:size]
        return page, page[-1].name if len(remaining) > size else ""

    def which_nodes(self, image: str, selection: NodeSelection) -> Presence:
        """Which selected nodes hold `image` (a reference or a bare digest), lack it, or have not reported.

        Raises:
            imageref.InvalidImageReference: `image` is neither.
        """
        query = presence.parse_query(image)
        present: list[tuple[NodeView, presence.InventoryImage]] = []
        absent: list[str] = []
        unknown: list[str] = []
        for view in self.select(selection):
            if view.inventory is None:
                unknown.append(view.name)
                continue
            found = view.inventory.find(query)
            if found is None:
                absent.append(view.name)
            else:
                present.append((view, found))
        return Presence(query.normalized, tuple(present), tuple(absent), tuple(unknown))

    def report(
        self,
        *,
        caller_node: str | None,
        node: str,
        sequence: int,
        snapshot: Iterable[presence.InventoryImage] | None = None,
        upserted: Iterable[presence.InventoryImage] = (),
        removed_digests: Iterable[str] = (),
    ) -> ReportOutcome:
        """Record a report from the puller of `caller_node` (None: authentication is off) about `node`.

        Raises:
            PermissionDenied: a puller reports for a node other than its own.
            inventory.InventoryLimitExceeded: the report exceeds the per-node bound.
        """
        if caller_node is not None and caller_node != node:
            raise PermissionDenied(f"the puller of node {caller_node} may report only its own node, not {node}")
        if snapshot is not None:
            return self._inventory.apply_snapshot(node, sequence, snapshot)
        return self._inventory.apply_delta(node, sequence, upserted=upserted, removed_digests=removed_digests)

    def _view(self, nodeimage: NodeImage) -> NodeView:
        name = nodeimage.metadata.name
        return NodeView(name=name, labels=nodeimage.metadata.labels or {}, inventory=self._inventory.get(name))
