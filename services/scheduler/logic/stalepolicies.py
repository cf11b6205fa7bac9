"""Which targets' tag entries must follow an edited pull policy (design §5, upstream #2221).

A job that owns a tag entry keeps its timeout and backoff at the most generous of its owners'; an edit of the
job's `pullPolicy` (or of a co-owner's) reaches nodes the job already started through this scan, without
taking a parallelism slot (the refresh starts no new pull round).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

from services.scheduler.logic import tagentries
from services.shared.api.imagepulljob import ImagePullJob, ImagePullJobSpec
from services.shared.api.nodeimage import NodeImage

__all__ = ["SpecsByUid", "owner_uids", "stale_policy_nodes"]

SpecsByUid = Callable[[Iterable[str]], Mapping[str, ImagePullJobSpec]]
"""The specs of the active jobs with these UIDs (the dispatcher's index); unknown UIDs are left out."""


def stale_policy_nodes(
    job: ImagePullJob,
    nodes: Sequence[NodeImage],
    image: str,
    tag: str,
    specs_by_uid: SpecsByUid,
    *,
    exclude: set[str],
) -> list[str]:
    """Names of the `nodes` (except `exclude`) whose tag entry this job owns and whose limits are stale."""
    stale = []
    for node in nodes:
        if node.metadata.name in exclude:
            continue
        owners = owner_uids(node, image, tag)
        if job.metadata.uid not in owners:
            continue
        specs = {**specs_by_uid(owners), job.metadata.uid: job.spec}
        if tagentries.needs_policy_update(node, image, tag, job.metadata.uid, specs):
            stale.append(node.metadata.name)
    return stale


def owner_uids(node: NodeImage, image: str, tag: str) -> set[str]:
    """The UIDs owning the (image, tag) entry of `node`; empty when there is no such entry."""
    spec = (node.spec.images or {}).get(image)
    entry = next((t for t in spec.tags if t.tag == tag), None) if spec else None
    return {owner.uid for owner in (entry.owner_references or ())} if entry else set()
