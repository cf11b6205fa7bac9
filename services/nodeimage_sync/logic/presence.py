"""Does a node hold image X? Matching a query against the images a puller reported.

Runtimes report repo tags and repo digests in whatever spelling the image was pulled with
(`docker.io/library/nginx:1.25`, sometimes `nginx:1.25`); users ask with any spelling too. So both sides are
normalized the way the CRDs are (`services.shared.api.imageref`): a reported image is turned once, when it
is reported, into the set of normalized references it answers to and the set of digests it carries; a query
is normalized once per call; matching is then two set lookups per node.

A query is either a reference (`nginx`, `nginx:1.25`, `reg:5000/app@sha256:<hex>`), matched against repo tags
(or, with a digest, repo digests), or a bare digest (`sha256:<hex>`), matched against the image ID and the
digests of the repo digests.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from services.shared.api import imageref

__all__ = ["ImageKeys", "InventoryImage", "Query", "keys_of", "matches", "parse_query"]

_BARE_DIGEST = re.compile(r"(sha256:[a-f0-9]{64}|sha384:[a-f0-9]{96}|sha512:[a-f0-9]{128})")


@dataclass(frozen=True)
class InventoryImage:
    """One image as a node's puller reported it (the wire message's fields, proto-free)."""

    digest: str
    repo_tags: tuple[str, ...] = ()
    repo_digests: tuple[str, ...] = ()
    size_bytes: int = 0


@dataclass(frozen=True)
class ImageKeys:
    """What a reported image answers to: normalized references and digests."""

    references: frozenset[str]
    digests: frozenset[str]


@dataclass(frozen=True)
class Query:
    """A normalized query: exactly one of `reference` (pullable form) and `digest` is set."""

    normalized: str
    reference: str | None = None
    digest: str | None = None


def parse_query(text: str) -> Query:
    """Normalize what a caller asked for.

    Raises:
        imageref.InvalidImageReference: the text is neither a bare digest nor an image reference.
    """
    stripped = text.strip()
    if _BARE_DIGEST.fullmatch(stripped):
        return Query(normalized=stripped, digest=stripped)
    reference = imageref.parse(stripped).pullable()
    return Query(normalized=reference, reference=reference)


def keys_of(image: InventoryImage) -> ImageKeys:
    """The normalized references and digests of a reported image; unparsable spellings are skipped."""
    references = {ref for ref in (_normalized(text) for text in (*image.repo_tags, *image.repo_digests)) if ref}
    digests = {image.digest} if image.digest else set()
    digests.update(text.rpartition("@")[2] for text in image.repo_digests if "@" in text)
    return ImageKeys(references=frozenset(references), digests=frozenset(digests))


def matches(query: Query, keys: ImageKeys) -> bool:
    """Whether an image with `keys` is what `query` asks for."""
    if query.digest is not None:
        return query.digest in keys.digests
    return query.reference in keys.references


def _normalized(text: str) -> str | None:
    try:
        return imageref.parse(text).pullable()
    except imageref.InvalidImageReference:
        return None
