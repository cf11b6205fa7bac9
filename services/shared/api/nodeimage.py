"""NodeImage: the images one node should hold, and how pulling them went (upstream-behaviour.md §1.5).

One cluster-scoped NodeImage per Node, same name, labels mirrored from the Node. `spec.images` maps an
image's familiar name (`nginx`, `myregistry:5000/my/image`) to its tag entries; the scheduler writes tag
entries for jobs, nodeimage_sync garbage-collects them, and the node's puller writes `status`.

Our additions (design §1, §4, §5), all optional so upstream objects stay valid:

* `ImageTagSpec.trace_contexts`: one W3C trace context per owning job, keyed by the job's UID. A tag can be
  shared by several jobs, so it carries one per owner; the puller's span continues the newest owner's
  context and links the others (design §4).
* `ImageTagStatus.pulled_bytes` / `total_bytes`: byte progress, where the runtime exposes it (containerd's
  content store), absent otherwise. Upstream's `progress` (0-100) is kept and means what it meant.
* `NodeImageStatus.observed_generation`: the spec generation the puller last acted on.

A tag entry's `version` and a status entry's `version` are Go `int64`s without a pointer: absent reads
as 0 and 0 is not written, exactly as upstream, so comparing the two is always int to int.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar

from services.shared.api import constants, wire
from services.shared.api.meta import ObjectMeta, ObjectReference
from services.shared.api.pulloptions import SandboxConfig

__all__ = [
    "ImagePullPhase",
    "ImageSpec",
    "ImageStatus",
    "ImageTagPullPolicy",
    "ImageTagSpec",
    "ImageTagStatus",
    "NodeImage",
    "NodeImageSpec",
    "NodeImageStatus",
    "ReferenceObject",
    "SyncStatus",
    "TraceContext",
]


class ImagePullPhase(enum.StrEnum):
    """Phase of one tag on one node. `Succeeded` and `Failed` are final for the tag's version."""

    WAITING = "Waiting"
    PULLING = "Pulling"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


@dataclass(frozen=True, kw_only=True, slots=True)
class ReferenceObject(wire.WireObject):
    """A pull secret reference `<namespace>/<name>`; the secret's contents never appear in a NodeImage.

    `mode` is `batch` for upstream's shared secret copies (`constants.REFERENCE_MODE_BATCH`).
    """

    SHARED: ClassVar[bool] = True

    namespace: str = ""
    name: str = ""
    mode: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class ImageTagPullPolicy(wire.WireObject):
    """Limits for pulling one tag entry, derived from its owning jobs (upstream §2.6, design §5)."""

    SHARED: ClassVar[bool] = True

    timeout_seconds: int | None = None
    backoff_limit: int | None = None
    ttl_seconds_after_finished: int | None = None
    active_deadline_seconds: int | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class TraceContext(wire.WireObject):
    """The trace of one owning job, in W3C Trace Context form (`traceparent`, optional `tracestate`)."""

    SHARED: ClassVar[bool] = True

    uid: str
    traceparent: str
    tracestate: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class ImageTagSpec(wire.WireObject):
    """One tag (or `sha256:` digest) of an image that this node should pull.

    `created_at` is optional (design §1): nodeimage_sync stamps it when missing. Each bump of `version`
    asks the node for a new pull round.
    """

    tag: str
    created_at: datetime | None = None
    pull_policy: ImageTagPullPolicy | None = None
    owner_references: tuple[ObjectReference, ...] | None = None
    version: int = 0
    image_pull_policy: str = ""
    trace_contexts: tuple[TraceContext, ...] | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ImageSpec(wire.WireObject):
    """All requested tags of one image, with the pull secrets and sandbox config they share."""

    pull_secrets: tuple[ReferenceObject, ...] | None = None
    tags: tuple[ImageTagSpec, ...]
    sandbox_config: SandboxConfig | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class NodeImageSpec(wire.WireObject):
    """Images keyed by familiar name; None when the node has been asked for nothing yet."""

    images: Mapping[str, ImageSpec] | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ImageTagStatus(wire.WireObject):
    """How pulling one tag (at `version`) went on this node. `image_id` is `<name>@<runtime image id>`."""

    tag: str
    phase: str
    progress: int = 0
    start_time: datetime | None = None
    completion_time: datetime | None = None
    version: int = 0
    image_id: str = field(default="", metadata=wire.renamed("imageID"))
    message: str = ""
    pulled_bytes: int | None = None
    total_bytes: int | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ImageStatus(wire.WireObject):
    """Status entries of one image, sorted by tag."""

    tags: tuple[ImageTagStatus, ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class SyncStatus(wire.WireObject):
    """Upstream's `firstSyncStatus`: declared but never written by any component; kept for compatibility."""

    sync_at: datetime | None = None
    status: str = ""
    message: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class NodeImageStatus(wire.WireObject):
    """Per-tag statuses and counts by phase. The counters are always written, as upstream's Go type does."""

    desired: int
    succeeded: int = field(default=0, metadata=wire.ALWAYS_WRITTEN)
    failed: int = field(default=0, metadata=wire.ALWAYS_WRITTEN)
    pulling: int = field(default=0, metadata=wire.ALWAYS_WRITTEN)
    waiting: int = field(default=0, metadata=wire.ALWAYS_WRITTEN)
    image_statuses: Mapping[str, ImageStatus] | None = None
    first_sync_status: SyncStatus | None = None
    observed_generation: int = 0


@dataclass(frozen=True, kw_only=True, slots=True)
class NodeImage(wire.WireObject):
    """A whole NodeImage object. `spec` is always written (`{}` when empty); `status` is None until written."""

    api_version: str = constants.API_VERSION
    kind: str = constants.KIND_NODE_IMAGE
    metadata: ObjectMeta = field(default_factory=ObjectMeta)
    spec: NodeImageSpec = field(default_factory=NodeImageSpec)
    status: NodeImageStatus | None = None
