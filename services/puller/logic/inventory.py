"""What changed in the node's images since the last inventory report (for `NodeInventory.ReportImages`).

The puller reports a full snapshot when it starts, periodically, and whenever the server asks for one
(`resync_required`); after a pull it reports only the difference from its last accepted report. Images are
keyed by the runtime's image id; an image whose tags or size changed is sent again whole.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = ["Delta", "InventoryImage", "diff", "index"]


@dataclass(frozen=True)
class InventoryImage:
    """One image as reported: runtime id, tags, repo digests and size."""

    digest: str
    repo_tags: tuple[str, ...]
    repo_digests: tuple[str, ...]
    size_bytes: int


@dataclass(frozen=True)
class Delta:
    """Images that appeared or changed, and ids of images that are gone."""

    upserted: tuple[InventoryImage, ...]
    removed: tuple[str, ...]

    @property
    def empty(self) -> bool:
        """Nothing changed."""
        return not self.upserted and not self.removed


def index(images: Iterable[InventoryImage]) -> dict[str, InventoryImage]:
    """Images by id, with tags and digests sorted so that equal content compares equal."""
    return {
        image.digest: InventoryImage(
            digest=image.digest,
            repo_tags=tuple(sorted(image.repo_tags)),
            repo_digests=tuple(sorted(image.repo_digests)),
            size_bytes=image.size_bytes,
        )
        for image in images
    }


def diff(previous: Mapping[str, InventoryImage], current: Mapping[str, InventoryImage]) -> Delta:
    """The delta that turns the `previous` report into `current` (both from `index`)."""
    upserted = tuple(image for digest, image in sorted(current.items()) if previous.get(digest) != image)
    removed = tuple(sorted(digest for digest in previous if digest not in current))
    return Delta(upserted=upserted, removed=removed)
