"""The version protocol and the tag entry's pull policy (upstream §2.5, §2.6; design §4, §5)."""

from __future__ import annotations

from collections.abc import Mapping

from services.scheduler.logic import tagentries, tagpolicy
from services.shared.api.imagepulljob import ImagePullJobSpec
from services.shared.api.meta import ObjectReference
from services.shared.api.nodeimage import ImageSpec, ImageTagPullPolicy, NodeImage, ReferenceObject, TraceContext
from tests.unit.scheduler.builders import JOB_UID, at, job, node, tag_entry, tag_status

SETTINGS = tagpolicy.TagPolicySettings()
OWNER = ObjectReference(kind="ImagePullJob", namespace="ns", name="j", uid=JOB_UID, api_version="prepull.io/v1beta1")
TRACE = TraceContext(uid=JOB_UID, traceparent="00-" + "1" * 32 + "-" + "2" * 16 + "-01")


def request(**overrides: object) -> tagentries.TagRequest:
    values: dict[str, object] = {
        "image": "nginx",
        "tag": "1.25",
        "owner": OWNER,
        "secret_refs": (),
        "new_policy": tagpolicy.new_tag_policy(job().spec, SETTINGS, 0.0),
        "image_pull_policy": "IfNotPresent",
        "sandbox_config": None,
        "trace": TRACE,
    }
    values.update(overrides)
    return tagentries.TagRequest(**values)  # type: ignore[arg-type]


def plan(
    n: NodeImage, req: tagentries.TagRequest | None = None, specs: Mapping[str, ImagePullJobSpec] | None = None
) -> ImageSpec | None:
    owner_specs = specs if specs is not None else {JOB_UID: job().spec}
    return tagentries.plan_image_spec(n, req or request(), at(5), owner_specs)


def test_new_entry_version_follows_the_status_version() -> None:
    fresh = tagentries.plan_image_spec(node("a"), request(), at(5), {})
    assert fresh is not None and fresh.tags[0].version == 0
    stale = node("a", tags=[], statuses=[tag_status(version=4)])
    planned = tagentries.plan_image_spec(stale, request(), at(5), {})
    assert planned is not None
    entry = planned.tags[0]
    assert entry.version == 5
    assert entry.created_at == at(5)
    assert entry.owner_references == (OWNER,)
    assert entry.trace_contexts == (TRACE,)
    assert entry.image_pull_policy == "IfNotPresent"


def test_joining_a_tag_owned_by_another_job_bumps_the_version() -> None:
    other = job(uid="other").spec
    shared = node("a", tags=[tag_entry(version=3, owners=("other",))])
    planned = tagentries.plan_image_spec(shared, request(), at(9), {"other": other, JOB_UID: job().spec})
    assert planned is not None
    entry = planned.tags[0]
    assert entry.version == 4
    assert entry.created_at == at(9)
    assert [o.uid for o in entry.owner_references or ()] == ["other", JOB_UID]


def test_owned_entry_without_changes_is_not_rewritten() -> None:
    policy = {"timeoutSeconds": 600, "backoffLimit": 3, "ttlSecondsAfterFinished": 2100}
    trace = {"uid": JOB_UID, "traceparent": TRACE.traceparent}
    owned = node("a", tags=[tag_entry(pullPolicy=policy, traceContexts=[trace])])
    assert plan(owned) is None


def test_owned_entry_gets_missing_secret_refs() -> None:
    policy = {"timeoutSeconds": 600, "backoffLimit": 3, "ttlSecondsAfterFinished": 2100}
    trace = {"uid": JOB_UID, "traceparent": TRACE.traceparent}
    owned = node("a", tags=[tag_entry(pullPolicy=policy, traceContexts=[trace])])
    ref = ReferenceObject(namespace="ns", name="regcred")
    planned = plan(owned, request(secret_refs=(ref,)))
    assert planned is not None and planned.pull_secrets == (ref,)


def test_changed_pull_policy_reaches_the_tag_entry() -> None:
    policy = {"timeoutSeconds": 600, "backoffLimit": 3, "ttlSecondsAfterFinished": 2100}
    owned = node("a", tags=[tag_entry(pullPolicy=policy)])
    edited = job(pullPolicy={"timeoutSeconds": 900, "backoffLimit": 1}).spec
    planned = plan(owned, specs={JOB_UID: edited})
    assert planned is not None
    tag_policy = planned.tags[0].pull_policy
    assert tag_policy is not None
    assert (tag_policy.timeout_seconds, tag_policy.backoff_limit) == (900, 1)
    assert tag_policy.ttl_seconds_after_finished == 2100


def test_shared_tag_takes_the_most_generous_owner() -> None:
    policy = {"timeoutSeconds": 600, "backoffLimit": 3, "ttlSecondsAfterFinished": 2100}
    shared = node("a", tags=[tag_entry(pullPolicy=policy, owners=("other", JOB_UID))])
    specs = {
        "other": job(uid="other", pullPolicy={"timeoutSeconds": 1200, "backoffLimit": 0}).spec,
        JOB_UID: job().spec,
    }
    planned = plan(shared, specs=specs)
    assert planned is not None
    tag_policy = planned.tags[0].pull_policy
    assert tag_policy is not None
    assert (tag_policy.timeout_seconds, tag_policy.backoff_limit) == (1200, 3)


def test_tags_stay_sorted() -> None:
    other = node("a", tags=[tag_entry("2.0", owners=("x",)), tag_entry("0.9", owners=("x",))])
    planned = tagentries.plan_image_spec(other, request(), at(1), {})
    assert planned is not None
    assert [t.tag for t in planned.tags] == ["0.9", "1.25", "2.0"]


def test_always_tag_policy() -> None:
    assert tagpolicy.new_tag_policy(job().spec, SETTINGS, 0.0) == ImageTagPullPolicy(
        timeout_seconds=600, backoff_limit=3, ttl_seconds_after_finished=2100
    )
    with_ttl = job(completionPolicy={"ttlSecondsAfterFinished": 60, "activeDeadlineSeconds": 900}).spec
    policy = tagpolicy.new_tag_policy(with_ttl, SETTINGS, 0.5)
    assert policy.ttl_seconds_after_finished == 60 + 300 + 150
    assert policy.active_deadline_seconds == 900
    deadline_only = job(completionPolicy={"activeDeadlineSeconds": 900}).spec
    assert tagpolicy.new_tag_policy(deadline_only, SETTINGS, 0.0).ttl_seconds_after_finished == 1200


def test_never_tag_policy_repulls_about_daily() -> None:
    never = job(completionPolicy={"type": "Never"}, pullPolicy={"timeoutSeconds": 3600}).spec
    low = tagpolicy.new_tag_policy(never, SETTINGS, 0.0)
    high = tagpolicy.new_tag_policy(never, SETTINGS, 0.999)
    assert low.ttl_seconds_after_finished == 86400 - 600
    assert high.ttl_seconds_after_finished is not None and 86400 + 590 < high.ttl_seconds_after_finished < 86400 + 600
    assert low.active_deadline_seconds == 3600
    short = tagpolicy.new_tag_policy(job(completionPolicy={"type": "Never"}).spec, SETTINGS, 0.0)
    assert short.active_deadline_seconds == 1800


def test_needs_policy_update_only_for_owned_entries_with_other_limits() -> None:
    policy = {"timeoutSeconds": 600, "backoffLimit": 3, "ttlSecondsAfterFinished": 2100}
    owned = node("a", tags=[tag_entry(pullPolicy=policy)])
    assert not tagentries.needs_policy_update(owned, "nginx", "1.25", JOB_UID, {JOB_UID: job().spec})
    edited = {JOB_UID: job(pullPolicy={"timeoutSeconds": 60}).spec}
    assert tagentries.needs_policy_update(owned, "nginx", "1.25", JOB_UID, edited)
    foreign = node("a", tags=[tag_entry(pullPolicy=policy, owners=("x",))])
    assert not tagentries.needs_policy_update(foreign, "nginx", "1.25", JOB_UID, edited)
    unknown_owner = node("a", tags=[tag_entry(pullPolicy=policy, owners=("x", JOB_UID))])
    assert not tagentries.needs_policy_update(unknown_owner, "nginx", "1.25", JOB_UID, edited)  # floor kept
