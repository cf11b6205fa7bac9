"""Writing a job's tag entry into one NodeImage: the version protocol (upstream-behaviour.md §2.5, §10.2).

Given the NodeImage as just read, decide the new `spec.images[<name>]`, or None when nothing needs writing:

* no tag entry: create one with `version = (status entry's version, or -1) + 1`, so the node sees a new round
  even if a stale status for the tag is still there;
* an entry owned by other jobs: join it — bump `version`, refresh `createdAt`, add our owner reference and take
  our `imagePullPolicy` (a new owner asks the node for a fresh pull);
* an entry we already own: only fill in what is missing (secret references, our trace context) and bring its
  timeout and backoff to the most generous of its owners (design §5; upstream never updated them, #2221).

Secret references (namespace/name, never contents, design §3) and trace contexts (one per owning job, design
§4) are kept at the image and tag level respectively. Tags stay sorted by `tag`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from services.scheduler.logic import tagpolicy
from services.shared.api.imagepulljob import ImagePullJobSpec
from services.shared.api.meta import ObjectReference
from services.shared.api.nodeimage import (
    ImageSpec,
    ImageTagPullPolicy,
    ImageTagSpec,
    NodeImage,
    ReferenceObject,
    TraceContext,
)
from services.shared.api.pulloptions import SandboxConfig

__all__ = [
    "TagRequest",
    "missing_secret_refs",
    "needs_policy_update",
    "owners_limits",
    "plan_image_spec",
    "status_version",
]


@dataclass(frozen=True)
class TagRequest:
    """What one job wants in a NodeImage."""

    image: str
    """`spec.images` key: the familiar name."""
    tag: str
    """The tag, or the digest for a pinned image."""
    owner: ObjectReference
    """The job, as the owner reference written into the tag entry."""
    secret_refs: tuple[ReferenceObject, ...]
    new_policy: ImageTagPullPolicy
    """The pull policy for a tag entry created by this request."""
    image_pull_policy: str
    sandbox_config: SandboxConfig | None
    trace: TraceContext | None


def status_version(node: NodeImage, image: str, tag: str) -> int | None:
    """The version of the status entry for (image, tag), or None when the node reported none."""
    statuses = (node.status.image_statuses or {}) if node.status else {}
    image_status = statuses.get(image)
    for entry in image_status.tags if image_status else ():
        if entry.tag == tag:
            return entry.version
    return None


def missing_secret_refs(image_spec: ImageSpec | None, wanted: Sequence[ReferenceObject]) -> tuple[ReferenceObject, ...]:
    """The wanted secret references the image entry lacks, compared by namespace and name."""
    present = {(ref.namespace, ref.name) for ref in (image_spec.pull_secrets or () if image_spec else ())}
    return tuple(ref for ref in wanted if (ref.namespace, ref.name) not in present)


def plan_image_spec(
    node: NodeImage,
    request: TagRequest,
    now: datetime,
    owner_specs: Mapping[str, ImagePullJobSpec],
) -> ImageSpec | None:
    """The new `spec.images[request.image]` for `node`, or None when it is already right.

    Args:
        node: the NodeImage as just read from the apiserver.
        request: what the job wants.
        now: the time for `createdAt`.
        owner_specs: specs of jobs we know, by UID (to follow the owners' pull policies); owners missing here
            keep the tag's current limits as a floor.
    """
    images = node.spec.images or {}
    current = images.get(request.image)
    tags = list(current.tags) if current else []
    index = next((i for i, entry in enumerate(tags) if entry.tag == request.tag), None)
    uid = request.owner.uid
    if index is None:
        previous = status_version(node, request.image, request.tag)
        entry = ImageTagSpec(
            tag=request.tag,
            created_at=now,
            pull_policy=request.new_policy,
            owner_references=(request.owner,),
            version=(-1 if previous is None else previous) + 1,
            image_pull_policy=request.image_pull_policy,
            trace_contexts=(request.trace,) if request.trace else None,
        )
        tags.append(entry)
        changed_tag = True
    else:
        existing = tags[index]
        owners = existing.owner_references or ()
        if any(owner.uid == uid for owner in owners):
            entry = _follow_owners(existing, request, owner_specs)
        else:
            entry = dataclasses.replace(
                _follow_owners(existing, request, owner_specs, joining=True),
                version=existing.version + 1,
                created_at=now,
                owner_references=(*owners, request.owner),
                image_pull_policy=request.image_pull_policy,
            )
        changed_tag = entry != existing
        tags[index] = entry
    missing = missing_secret_refs(current, request.secret_refs)
    if not changed_tag and not missing:
        return None
    tags.sort(key=lambda t: t.tag)
    return ImageSpec(
        pull_secrets=(*((current.pull_secrets or ()) if current else ()), *missing) or None,
        tags=tuple(tags),
        sandbox_config=request.sandbox_config,
        extra=current.extra if current else {},
    )


def needs_policy_update(
    node: NodeImage, image: str, tag: str, uid: str, owner_specs: Mapping[str, ImagePullJobSpec]
) -> bool:
    """True when the tag entry `uid` owns has a timeout or backoff other than its owners' most generous.

    This is how an edited `pullPolicy` reaches nodes the job already started (design §5, upstream #2221);
    such a refresh starts no new pull round, so it does not take a parallelism slot.
    """
    spec = (node.spec.images or {}).get(image)
    entry = next((t for t in spec.tags if t.tag == tag), None) if spec else None
    if entry is None or entry.pull_policy is None:
        return False
    owner_uids = [owner.uid for owner in entry.owner_references or ()]
    if uid not in owner_uids:
        return False
    wanted = owners_limits(owner_uids, owner_specs, entry.pull_policy)
    return (entry.pull_policy.timeout_seconds, entry.pull_policy.backoff_limit) != wanted


def owners_limits(
    owner_uids: Sequence[str], owner_specs: Mapping[str, ImagePullJobSpec], current: ImageTagPullPolicy | None
) -> tuple[int, int]:
    """The (timeout, backoff) a tag entry owned by `owner_uids` should carry: the most generous owner's.

    Owners missing from `owner_specs` (finished, or not in our cache yet) keep `current` as a floor: we cannot
    tell what they asked for, and lowering a limit under a running pull of theirs would cut it short.
    """
    known = [owner_specs[each] for each in owner_uids if each in owner_specs]
    floor = current if len(known) < len(owner_uids) else None
    return tagpolicy.generous_limits(known, floor)


def _follow_owners(
    entry: ImageTagSpec, request: TagRequest, owner_specs: Mapping[str, ImagePullJobSpec], *, joining: bool = False
) -> ImageTagSpec:
    """`entry` with our trace context, and timeout/backoff raised or lowered to the most generous owner's."""
    owner_uids = [owner.uid for owner in entry.owner_references or ()]
    if joining:
        owner_uids.append(request.owner.uid)
    timeout, backoff = owners_limits(owner_uids, owner_specs, entry.pull_policy)
    policy = entry.pull_policy or request.new_policy
    if (policy.timeout_seconds, policy.backoff_limit) != (timeout, backoff):
        policy = dataclasses.replace(policy, timeout_seconds=timeout, backoff_limit=backoff)
    traces = tuple(t for t in entry.trace_contexts or () if t.uid in owner_uids)
    if request.trace is not None and all(t.uid != request.trace.uid for t in traces):
        traces = (*traces, request.trace)
    return dataclasses.replace(entry, pull_policy=policy, trace_contexts=traces or None)
