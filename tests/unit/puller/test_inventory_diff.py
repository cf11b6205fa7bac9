"""Inventory deltas: what changed since the last accepted report."""

from __future__ import annotations

from services.puller.logic import inventory
from services.puller.logic.inventory import InventoryImage


def image(digest: str, *tags: str, size: int = 10) -> InventoryImage:
    return InventoryImage(digest=digest, repo_tags=tags, repo_digests=(), size_bytes=size)


def test_no_change_is_an_empty_delta() -> None:
    before = inventory.index([image("a", "x:1", "x:2")])
    after = inventory.index([image("a", "x:2", "x:1")])
    assert inventory.diff(before, after).empty


def test_new_changed_and_removed_images() -> None:
    before = inventory.index([image("a", "x:1"), image("b", "y:1"), image("c", "z:1")])
    after = inventory.index([image("a", "x:1"), image("b", "y:1", "y:latest"), image("d", "w:1")])
    delta = inventory.diff(before, after)
    assert [each.digest for each in delta.upserted] == ["b", "d"]
    assert delta.removed == ("c",)
