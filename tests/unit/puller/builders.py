"""Builders for NodeImages and statuses in puller unit tests: `a_node_image(images={...})`, `a_status(...)`."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

from services.shared.api import nodeimage

T0 = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)


def a_tag(tag: str, *, version: int = 0, policy: str = "", **pull_policy: int) -> dict[str, Any]:
    """A tag entry as the scheduler writes it."""
    entry: dict[str, Any] = {
        "tag": tag,
        "version": version,
        "pullPolicy": {"ttlSecondsAfterFinished": 300, **{_camel(key): value for key, value in pull_policy.items()}},
    }
    if policy:
        entry["imagePullPolicy"] = policy
    return entry


def a_status(tag: str, phase: str, *, version: int = 0, final: bool | None = None, message: str = "") -> dict[str, Any]:
    """A status entry; final ones (Succeeded/Failed unless told otherwise) get a completion time."""
    entry: dict[str, Any] = {"tag": tag, "phase": phase, "version": version}
    if phase != "Waiting":
        entry["startTime"] = "2024-01-01T00:00:00Z"
    if final if final is not None else phase in ("Succeeded", "Failed"):
        entry["completionTime"] = "2024-01-01T00:01:00Z"
    if message:
        entry["message"] = message
    return entry


def a_node_image(
    images: Mapping[str, list[dict[str, Any]]] | None = None,
    statuses: Mapping[str, list[dict[str, Any]]] | None = None,
    *,
    secrets: Mapping[str, list[dict[str, str]]] | None = None,
) -> nodeimage.NodeImage:
    """A NodeImage with `images` (name → tag entries) and optional stored `statuses` (name → status entries)."""
    spec_images = {
        name: {"tags": tags, **({"pullSecrets": secrets[name]} if secrets and name in secrets else {})}
        for name, tags in (images or {}).items()
    }
    raw: dict[str, Any] = {"metadata": {"name": "node-a", "generation": 3}, "spec": {"images": spec_images}}
    if statuses is not None:
        entries = [entry for tags in statuses.values() for entry in tags]
        raw["status"] = {
            "desired": len(entries),
            "imageStatuses": {name: {"tags": tags} for name, tags in statuses.items()},
        }
    return nodeimage.NodeImage.from_dict(raw)


def _camel(name: str) -> str:
    first, *rest = name.split("_")
    return first + "".join(part.capitalize() for part in rest)
