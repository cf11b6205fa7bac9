"""The stale-policy scan: which owned tag entries must follow their owners' pull policies (design §5, #2221)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pytest

from services.scheduler.logic import stalepolicies, tagentries
from services.scheduler.logic import status as job_status
from services.shared.api.imagepulljob import ImagePullJob, ImagePullJobSpec
from services.shared.api.nodeimage import ImageTagPullPolicy, NodeImage
from tests.unit.scheduler.builders import JOB_UID, at, job, node, tag_entry, tag_status

POLICY = {"timeoutSeconds": 600, "backoffLimit": 3, "ttlSecondsAfterFinished": 2100}
GENEROUS = {"timeoutSeconds": 900, "backoffLimit": 5, "ttlSecondsAfterFinished": 2100}


class Specs:
    """The active jobs' specs by UID, recording every question (what the dispatcher's index answers)."""

    def __init__(self, specs: Mapping[str, ImagePullJobSpec]) -> None:
        self.specs = specs
        self.asked: list[frozenset[str]] = []

    def __call__(self, uids: Iterable[str]) -> dict[str, ImagePullJobSpec]:
        wanted = frozenset(uids)
        self.asked.append(wanted)
        return {uid: spec for uid, spec in self.specs.items() if uid in wanted}


def nodes() -> list[NodeImage]:
    """Targets covering every case: in step, behind the job, co-owned (known and unknown), no policy, foreign."""
    return [
        node("a-same", tags=[tag_entry(pullPolicy=POLICY)], statuses=[tag_status()]),
        node("b-generous", tags=[tag_entry(pullPolicy=GENEROUS)]),
        node("c-shared", tags=[tag_entry(pullPolicy=POLICY, owners=(JOB_UID, "co"))]),
        node("d-shared-generous", tags=[tag_entry(pullPolicy=GENEROUS, owners=("co", JOB_UID))]),
        node("e-unknown-owner", tags=[tag_entry(pullPolicy=GENEROUS, owners=(JOB_UID, "gone"))]),
        node("f-unknown-owner-low", tags=[tag_entry(pullPolicy=POLICY, owners=("gone", JOB_UID))]),
        node("g-no-policy", tags=[tag_entry()]),
        node("h-foreign", tags=[tag_entry(pullPolicy=GENEROUS, owners=("co",))]),
        node("i-no-entry"),
        node("j-same", tags=[tag_entry(pullPolicy=POLICY)]),
    ]


def scan(j: ImagePullJob, targets: list[NodeImage], specs: Specs, exclude: set[str] | None = None) -> list[str]:
    observation = job_status.observe(j, targets=targets, image="nginx", tag="1.25", now=at(10))
    return stalepolicies.stale_policy_nodes(j, observation.owned, specs, exclude=exclude or set())


def one_by_one(j: ImagePullJob, targets: list[NodeImage], specs: Specs) -> list[str]:
    """The per-node decision of `tagentries.needs_policy_update`, node by node."""
    stale = []
    for target in targets:
        images = target.spec.images or {}
        owners = (
            {owner.uid for entry in images["nginx"].tags for owner in entry.owner_references or ()} if images else set()
        )
        if tagentries.needs_policy_update(target, "nginx", "1.25", JOB_UID, {**specs(owners), JOB_UID: j.spec}):
            stale.append(target.metadata.name)
    return stale


def test_observe_returns_the_entries_the_job_owns_in_target_order() -> None:
    targets = nodes()
    observation = job_status.observe(job(), targets=targets, image="nginx", tag="1.25", now=at(10))
    names = [name for name, _ in observation.owned]
    assert names == [n.metadata.name for n in targets if n.metadata.name not in ("h-foreign", "i-no-entry")]
    first = targets[0].spec.images
    assert first is not None and observation.owned[0][1] == first["nginx"].tags[0]


@pytest.mark.parametrize("own", [{}, {"timeoutSeconds": 60}, {"timeoutSeconds": 900, "backoffLimit": 5}])
@pytest.mark.parametrize("co", [{}, {"timeoutSeconds": 1200}])
def test_the_scan_decides_as_the_per_node_check(own: dict[str, Any], co: dict[str, Any]) -> None:
    j = job(pullPolicy=own)
    specs = Specs({"co": job(uid="co", pullPolicy=co).spec})
    assert scan(j, nodes(), specs) == one_by_one(j, nodes(), specs)


def test_an_edited_timeout_makes_the_entries_it_decides_stale() -> None:
    edited = job(pullPolicy={"timeoutSeconds": 60})
    stale = scan(edited, nodes(), Specs({"co": job(uid="co").spec}))
    # Alone or with a known co-owner, the job's 60 s (co-owner: 600 s) is not what the entry carries; an owner
    # we cannot see keeps the entry's limits as a floor, so f (600 s, 3 already) stays and e (900 s) stays.
    assert stale == ["a-same", "b-generous", "d-shared-generous", "j-same"]


def test_unchanged_jobs_leave_every_entry_alone() -> None:
    assert scan(job(), nodes(), Specs({"co": job(uid="co").spec})) == ["b-generous", "d-shared-generous"]


def test_excluded_nodes_are_skipped() -> None:
    edited = job(pullPolicy={"timeoutSeconds": 60})
    stale = scan(edited, nodes(), Specs({}), exclude={"a-same", "j-same"})
    assert "a-same" not in stale and "j-same" not in stale and "b-generous" in stale


def test_co_owners_specs_are_asked_once_per_set_of_owners() -> None:
    specs = Specs({"co": job(uid="co").spec})
    scan(job(), nodes() * 50, specs)
    # 400 owned entries, five owner lists in reference order: (job), (job, co), (co, job), (job, gone), (gone, job).
    assert len(specs.asked) == 5


def test_limits_with_an_unknown_owner_follow_each_entry() -> None:
    limits = stalepolicies.OwnersLimits(job(), Specs({}))
    owners = (JOB_UID, "gone")
    policies = [ImageTagPullPolicy.from_dict(policy) for policy in (POLICY, GENEROUS)]
    assert [limits.wanted(owners, policy) for policy in policies] == [(600, 3), (900, 5)]
    assert limits.wanted((JOB_UID,), policies[1]) == (600, 3)
