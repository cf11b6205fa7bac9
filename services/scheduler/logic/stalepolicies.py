"""Which targets' tag entries must follow an edited pull policy (design §5, upstream #2221).

A tag entry's timeout and backoff follow its owning jobs (the most generous of them); an edit of the job's
`pullPolicy`, or of a co-owner's, reaches the nodes the job already started through this scan, without taking
a parallelism slot (the refresh starts no new pull round). The decision per entry is
`tagentries.needs_policy_update`'s.

The scan runs on every reconcile of a running job, over every target it owns an entry on (thousands, each
reconcile woken by one target's status change), so it takes the entries `status.observe` already found, and
asks for the owners' specs and their limits once per distinct set of owners rather than once per node: the
entries of a job are nearly all owned by the same jobs, so the common case is one tuple comparison per node.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

from services.scheduler.logic import tagentries
from services.scheduler.logic.status import OwnedEntry
from services.shared.api.imagepulljob import ImagePullJob, ImagePullJobSpec
from services.shared.api.nodeimage import ImageTagPullPolicy

__all__ = ["OwnersLimits", "SpecsByUid", "stale_policy_nodes"]

SpecsByUid = Callable[[Iterable[str]], Mapping[str, ImagePullJobSpec]]
"""The specs of the active jobs with these UIDs (the dispatcher's index); unknown UIDs are left out."""


class OwnersLimits:
    """The limits each set of owners wants for one job's scan, asking `specs_by_uid` once per set.

    The job's own spec always counts as known (the cache may lag behind the object being reconciled). When
    every owner is known the limits depend on the owners alone and are remembered; otherwise they depend on
    the entry's current limits (the floor for the unknown owners) and are worked out per entry.
    """

    def __init__(self, job: ImagePullJob, specs_by_uid: SpecsByUid) -> None:
        self._uid = job.metadata.uid
        self._spec = job.spec
        self._specs_by_uid = specs_by_uid
        self._specs: dict[tuple[str, ...], Mapping[str, ImagePullJobSpec]] = {}
        self._complete: dict[tuple[str, ...], tuple[int, int]] = {}

    def wanted(self, owners: tuple[str, ...], current: ImageTagPullPolicy | None) -> tuple[int, int]:
        """The (timeout, backoff) an entry owned by `owners` (in reference order) and carrying `current` wants."""
        known = self._complete.get(owners)
        if known is not None:
            return known
        specs = self._specs.get(owners)
        if specs is None:
            specs = self._specs[owners] = {**self._specs_by_uid(owners), self._uid: self._spec}
        limits = tagentries.owners_limits(owners, specs, current)
        if all(uid in specs for uid in owners):
            self._complete[owners] = limits
        return limits


def stale_policy_nodes(
    job: ImagePullJob, owned: Sequence[OwnedEntry], specs_by_uid: SpecsByUid, *, exclude: set[str]
) -> list[str]:
    """Names of the nodes in `owned` (but not in `exclude`) whose entry's timeout or backoff is not its owners'.

    Args:
        job: the job reconciled; it owns every entry in `owned`.
        owned: the job's own tag entries on its targets (`status.Observation.owned`), in target order.
        specs_by_uid: where the co-owners' specs come from.
        exclude: nodes written anyway (just chosen to start), which take the owners' limits with that write.
    """
    limits = OwnersLimits(job, specs_by_uid)
    stale = []
    for node, entry in owned:
        policy = entry.pull_policy
        if policy is None or node in exclude:
            continue
        owners = tuple(owner.uid for owner in entry.owner_references or ())
        if (policy.timeout_seconds, policy.backoff_limit) != limits.wanted(owners, policy):
            stale.append(node)
    return stale
