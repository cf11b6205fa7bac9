"""A job's status from its targets' NodeImages (upstream-behaviour.md §2.4, §1.3), plus our conditions.

Per target node, with (name, tag) the job's NodeImage entry:

* no tag entry, or one this job does not own: not synced and counted nowhere;
* otherwise the status entry for the tag counts only if its `version` equals the tag entry's:
  Succeeded → succeeded, Failed → failed; anything else — Waiting, Pulling, no status, a stale version — is
  *active* (upstream #1271/#2208: counting those as idle broke parallelism).

An `Always` job completes when every target is Succeeded or Failed — at once when nothing matches — or when
`activeDeadlineSeconds` (from `status.startTime`) passes, which fails every node still pulling or not started
and says so per node (design §5: no empty failure reasons).

Unlike upstream, a missing secret *reference* on a node does not make it "not synced": upstream needed the
reference for the node daemon to read its secret copy, while our puller asks `Credentials`, which reads the
job's own secrets. References are added whenever the tag entry is written, for visibility only; requiring
them would fight nodeimage_sync, which drops references to secrets that do not exist (a write loop).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from services.scheduler.logic import tagpolicy
from services.shared.api.conditions import Condition, ConditionStatus, ConditionType, set_condition
from services.shared.api.imagepulljob import ImagePullJob, ImagePullJobStatus, NodeFailure
from services.shared.api.nodeimage import ImagePullPhase, ImageTagSpec, ImageTagStatus, NodeImage

__all__ = [
    "MESSAGE_COMPLETED",
    "MESSAGE_DEADLINE",
    "MESSAGE_NO_PROGRESS",
    "Observation",
    "OwnedEntry",
    "observe",
    "progress_message",
]

MESSAGE_COMPLETED = "job has completed"
MESSAGE_NO_PROGRESS = "job is running, no progress"
MESSAGE_DEADLINE = "job exceeds activeDeadlineSeconds"
_MAX_NODES_IN_MESSAGE = 10

REASON_PULL_FAILED = "PullFailed"
REASON_NOT_RESPONDING = "NodeNotResponding"
REASON_DEADLINE = "DeadlineExceeded"
NOT_RESPONDING_MESSAGE = "node has not responded for a long time"


OwnedEntry = tuple[str, ImageTagSpec]
"""A target's name and its tag entry for the job's (image, tag), which this job owns. A plain tuple: one is
made per owned target on every reconcile, and a NamedTuple's construction costs ten times as much."""


@dataclass(frozen=True)
class Observation:
    """The job's new status and which targets still need their tag entry written."""

    status: ImagePullJobStatus
    not_synced: tuple[str, ...]
    """Target names whose tag entry (or secret references) this job must still write, sorted."""
    finished_now: bool
    """True when this observation finishes the job (completionTime newly set)."""
    owned: tuple[OwnedEntry, ...] = ()
    """The targets whose entry this job owns, in target order: found while counting, so that the stale-policy
    scan (`stalepolicies`) need not look every target's entry up again."""


@dataclass
class _Tally:
    succeeded: list[str]
    failed: list[tuple[str, ImageTagStatus | None]]
    pulling: list[str]
    not_synced: list[str]
    """Also the targets counted nowhere (what a passed deadline fails as "not started")."""
    owned: list[OwnedEntry]


def progress_message(desired: int, succeeded: int, failed: int) -> str:
    """Upstream's running message: no progress at 0 targets, else the finished share to one decimal."""
    if desired == 0:
        return MESSAGE_NO_PROGRESS
    return f"job is running, progress {100.0 * (succeeded + failed) / desired:.1f}%"


def observe(
    job: ImagePullJob,
    *,
    targets: Sequence[NodeImage],
    image: str,
    tag: str,
    now: datetime,
) -> Observation:
    """Count the targets and decide the status (see the module docstring). `job` must not be finished."""
    previous = job.status
    start_time = previous.start_time if previous and previous.start_time else now
    tally = _tally(job.metadata.uid, targets, image, tag)
    desired = len(targets)
    deadline = job.spec.completion_policy.active_deadline_seconds
    done = len(tally.succeeded) + len(tally.failed)
    never = tagpolicy.is_never(job.spec)
    if not never and deadline is not None and done != desired and (now - start_time).total_seconds() >= deadline:
        return _deadline_observation(job, tally, desired, start_time, now)
    failures = tuple(_failure(node, entry) for node, entry in sorted(tally.failed, key=lambda f: f[0]))
    finished = not never and desired - done == 0
    status = ImagePullJobStatus(
        start_time=start_time,
        completion_time=now if finished else None,
        desired=desired,
        active=len(tally.pulling),
        succeeded=len(tally.succeeded),
        failed=len(tally.failed),
        message=MESSAGE_COMPLETED if finished else progress_message(desired, len(tally.succeeded), len(tally.failed)),
        failed_nodes=tuple(f.node for f in failures) or None,
        node_failures=failures or None,
        observed_generation=job.metadata.generation,
        conditions=_conditions(job, finished=finished, deadline=False, failures=failures, now=now, progress=done),
        extra=previous.extra if previous else {},
    )
    return Observation(status, tuple(sorted(set(tally.not_synced))), finished, tuple(tally.owned))


def _tally(uid: str, targets: Sequence[NodeImage], image: str, tag: str) -> _Tally:
    """Sort the targets into the counters. Runs over every target on every reconcile of the job (each status
    change of a target wakes it), so it looks each entry up once, with plain loops rather than generators."""
    tally = _Tally([], [], [], [], [])
    for node in targets:
        name = node.metadata.name
        images = node.spec.images
        image_spec = images.get(image) if images else None
        entry = _tag_spec(image_spec.tags, tag) if image_spec else None
        if entry is None or not _owned_by(entry, uid):
            tally.not_synced.append(name)
            continue
        tally.owned.append((name, entry))
        status = _status_entry(node, image, tag)
        if status is None or status.version != entry.version:
            tally.pulling.append(name)
        elif status.phase == ImagePullPhase.SUCCEEDED:
            tally.succeeded.append(name)
        elif status.phase == ImagePullPhase.FAILED:
            tally.failed.append((name, status))
        else:
            tally.pulling.append(name)
    return tally


def _tag_spec(tags: Sequence[ImageTagSpec], tag: str) -> ImageTagSpec | None:
    for each in tags:
        if each.tag == tag:
            return each
    return None


def _owned_by(entry: ImageTagSpec, uid: str) -> bool:
    for owner in entry.owner_references or ():  # noqa: SIM110 -- any() over a generator costs several times more
        if owner.uid == uid:
            return True
    return False


def _status_entry(node: NodeImage, image: str, tag: str) -> ImageTagStatus | None:
    statuses = node.status.image_statuses if node.status else None
    image_status = statuses.get(image) if statuses else None
    if image_status is None:
        return None
    for each in image_status.tags:
        if each.tag == tag:
            return each
    return None


def _failure(node: str, entry: ImageTagStatus | None) -> NodeFailure:
    message = entry.message if entry and entry.message else "the pull failed without a message from the node"
    reason = REASON_NOT_RESPONDING if message == NOT_RESPONDING_MESSAGE else REASON_PULL_FAILED
    return NodeFailure(node=node, reason=reason, message=message)


def _deadline_observation(
    job: ImagePullJob, tally: _Tally, desired: int, start_time: datetime, now: datetime
) -> Observation:
    deadline = job.spec.completion_policy.active_deadline_seconds
    failures = [_failure(node, entry) for node, entry in tally.failed]
    failures += [
        NodeFailure(node=node, reason=REASON_DEADLINE, message=f"still pulling when the {deadline}s deadline passed")
        for node in tally.pulling
    ]
    failures += [
        NodeFailure(node=node, reason=REASON_DEADLINE, message=f"not started when the {deadline}s deadline passed")
        for node in dict.fromkeys(tally.not_synced)
    ]
    previous = job.status
    status = ImagePullJobStatus(
        start_time=start_time,
        completion_time=now,
        desired=desired,
        active=0,
        succeeded=len(tally.succeeded),
        failed=len(failures),
        message=MESSAGE_DEADLINE,
        failed_nodes=tuple(f.node for f in failures) or None,
        node_failures=tuple(failures) or None,
        observed_generation=job.metadata.generation,
        conditions=_conditions(job, finished=True, deadline=True, failures=failures, now=now, progress=desired),
        extra=previous.extra if previous else {},
    )
    return Observation(status, (), True)


def _conditions(
    job: ImagePullJob,
    *,
    finished: bool,
    deadline: bool,
    failures: Sequence[NodeFailure],
    now: datetime,
    progress: int,
) -> tuple[Condition, ...]:
    generation = job.metadata.generation
    conditions = job.status.conditions if job.status else None

    def condition(kind: ConditionType, true: bool, reason: str, message: str) -> Condition:
        status = ConditionStatus.TRUE if true else ConditionStatus.FALSE
        return Condition(
            type=kind,
            status=status,
            last_transition_time=now,
            reason=reason,
            message=message,
            observed_generation=generation,
        )

    if finished:
        reason = REASON_DEADLINE if deadline else "AllNodesFinished"
        done_message = MESSAGE_DEADLINE if deadline else "every target node finished pulling"
        progressing = condition(ConditionType.PROGRESSING, False, reason, done_message)
        complete = condition(ConditionType.COMPLETE, True, reason, done_message)
    else:
        progressing = condition(ConditionType.PROGRESSING, True, "Pulling", f"{progress} target node(s) finished")
        complete = condition(ConditionType.COMPLETE, False, "Pulling", "the job is still running")
    if failures:
        names = ", ".join(f.node for f in failures[:_MAX_NODES_IN_MESSAGE])
        more = f" and {len(failures) - _MAX_NODES_IN_MESSAGE} more" if len(failures) > _MAX_NODES_IN_MESSAGE else ""
        failed = condition(
            ConditionType.FAILED, True, failures[0].reason, f"{len(failures)} node(s) failed: {names}{more}"
        )
    else:
        failed = condition(ConditionType.FAILED, False, "NoFailures", "no target node failed")
    for new in (progressing, complete, failed):
        conditions = set_condition(conditions, new)
    return tuple(conditions or ())
