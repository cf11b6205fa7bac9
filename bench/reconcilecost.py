"""CPU of one ImagePullJob reconcile's decision, without a cluster: `python -m bench.reconcilecost`.

Every status change of a target NodeImage reconciles the job, and each reconcile looks at every target, so at
1,000 nodes with parallelism 100 the scheduler's CPU (on 2 cores shared with the apiserver, etcd and the
simulated agents) stretched the fan-out well beyond the apiserver's floor. This measures the pure parts of
one reconcile over N typed NodeImages built in memory, in the cache and dispatcher the scheduler uses:

- one `Always` job over every node, mid-rollout: a share of the tags Succeeded (a few Failed), `parallelism`
  nodes in flight, the rest without a tag entry, and no write of ours pending; the job's stored status is
  what this state gives, so the comparison must look at all of it (a changed status is encoded all the
  same, to be written), and the decision is to write nothing;
- the same with 200 other jobs' tag entries (another image each, Succeeded) on every node, as in the
  200 jobs x 3,000 nodes restart benchmark.

The parts are those of `JobReconciler._sync` in order; the table gives milliseconds per reconcile (the best
of a few rounds: the machine is shared, the minimum is the least disturbed). A last column times what a
reconcile adds with `--max-pulls-in-flight` (off by default): counting the pulls in flight on every node,
one NodeImage having changed since the previous count. `--profile` prints the hottest functions of the
whole decision under cProfile. Numbers are reported, never asserted.
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import pstats
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from services.scheduler import dispatcher as dispatcher_module
from services.scheduler import expectations as expectations_module
from services.scheduler.logic import inflight, rollout, stalepolicies, targets
from services.scheduler.logic import status as job_status
from services.scheduler.view import ClusterView
from services.shared.api import constants, imageref
from services.shared.api.imagepulljob import ImagePullJob
from services.shared.api.nodeimage import NodeImage
from services.shared.kube import informer, resources, store

SIZES = (1000, 3000)
OTHER_JOBS = 200
PARALLELISM = 100
SUCCEEDED_SHARE = 0.4
FAILED_NODES = 12
ROUNDS = 5
IMAGE = "registry.example:5000/bench/app:v1"
JOB_UID = "uid-bench-job"
NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
PART_NAMES = ("node map", "targets", "expectations", "observe", "choose", "stale policies", "status compare")
CAPS_PART = "in-flight count"


class _NoApi:
    """The informers are never started: the store is filled by hand."""

    def list_pages(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    def watch(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError


@dataclass
class Scenario:
    """N NodeImages in a view's cache, the job, and the dispatcher and expectations a reconcile reads."""

    nodes: int
    other_jobs: int
    view: ClusterView
    dispatcher: dispatcher_module.Dispatcher
    expectations: expectations_module.Expectations
    job: ImagePullJob
    raw_status: dict[str, Any]
    in_flight: inflight.InFlightCounter = dataclasses.field(default_factory=inflight.InFlightCounter)


def _job_body(uid: str, image: str, index: int, status: dict[str, Any] | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": constants.API_VERSION,
        "kind": constants.KIND_IMAGE_PULL_JOB,
        "metadata": {
            "name": f"job-{index}",
            "namespace": "bench",
            "uid": uid,
            "generation": 1,
            "resourceVersion": "10",
            "finalizers": [constants.JOB_FINALIZER],
            "annotations": {constants.ANNOTATION_TRACE_CONTEXT: f"00-{index:032x}-{index:016x}-01"},
        },
        "spec": {
            "image": image,
            "parallelism": PARALLELISM,
            "completionPolicy": {"type": "Always"},
            "pullPolicy": {"timeoutSeconds": 600, "backoffLimit": 3},
        },
    }
    if status is not None:
        body["status"] = status
    return body


def _tag_entry(tag: str, uid: str, index: int) -> dict[str, Any]:
    return {
        "tag": tag,
        "createdAt": "2026-01-01T11:00:00Z",
        "version": 1,
        "imagePullPolicy": "IfNotPresent",
        "pullPolicy": {"timeoutSeconds": 600, "backoffLimit": 3, "ttlSecondsAfterFinished": 2100},
        "ownerReferences": [
            {
                "apiVersion": constants.API_VERSION,
                "kind": constants.KIND_IMAGE_PULL_JOB,
                "namespace": "bench",
                "name": f"job-{index}",
                "uid": uid,
            }
        ],
        "traceContexts": [{"uid": uid, "traceparent": f"00-{index:032x}-{index:016x}-01"}],
    }


def _tag_status(tag: str, phase: str, message: str = "") -> dict[str, Any]:
    status: dict[str, Any] = {"tag": tag, "phase": phase, "version": 1, "progress": 100 if phase else 0}
    if phase in ("Succeeded", "Failed"):
        status["startTime"] = "2026-01-01T11:00:01Z"
        status["completionTime"] = "2026-01-01T11:00:02Z"
    if phase == "Succeeded":
        status["imageID"] = "app@sha256:" + "0" * 64
    if message:
        status["message"] = message
    return status


def _node_body(name: str, index: int, state: str, other_jobs: int, entry: imageref.NodeImageEntry) -> dict[str, Any]:
    images: dict[str, Any] = {}
    statuses: dict[str, Any] = {}
    for other in range(other_jobs):
        images[f"bench/other-{other}"] = {"tags": [_tag_entry("v1", f"uid-other-{other}", other + 1)]}
        statuses[f"bench/other-{other}"] = {"tags": [_tag_status("v1", "Succeeded")]}
    if state != "new":
        images[entry.image] = {"tags": [_tag_entry(entry.tag, JOB_UID, 0)]}
        phase = {"succeeded": "Succeeded", "failed": "Failed", "pulling": "Pulling"}[state]
        statuses[entry.image] = {"tags": [_tag_status(entry.tag, phase, "pull failed" if state == "failed" else "")]}
    labels = {"kubernetes.io/hostname": name, "topology.kubernetes.io/zone": f"zone-{index % 3}"}
    body: dict[str, Any] = {
        "apiVersion": constants.API_VERSION,
        "kind": constants.KIND_NODE_IMAGE,
        "metadata": {"name": name, "uid": f"uid-{name}", "resourceVersion": str(1000 + index), "labels": labels},
        "spec": {"images": images} if images else {},
    }
    if statuses:
        body["status"] = {"desired": len(images), "succeeded": len(images), "imageStatuses": statuses}
    return body


def _state(index: int, count: int) -> str:
    succeeded = int(count * SUCCEEDED_SHARE)
    if index < succeeded:
        return "failed" if index % (succeeded // FAILED_NODES) == 0 else "succeeded"
    if index < succeeded + PARALLELISM:
        return "pulling"
    return "new"


def build(count: int, other_jobs: int) -> Scenario:
    """The scenario with `count` NodeImages and `other_jobs` other jobs' tag entries on each."""
    entry = imageref.parse(IMAGE).nodeimage_entry()
    api = _NoApi()
    view = ClusterView(
        jobs=informer.Informer(api, resources.IMAGE_PULL_JOBS),
        list_jobs=informer.Informer(api, resources.IMAGE_LIST_PULL_JOBS),
        node_images=informer.Informer(api, resources.NODE_IMAGES, transform=NodeImage.from_dict),
        pods=informer.Informer(api, resources.PODS),
    )
    for index in range(count):
        name = f"node-{index:05d}"
        node = NodeImage.from_dict(_node_body(name, index, _state(index, count), other_jobs, entry))
        view.node_images.informer.store.upsert(store.Entry(name, node.metadata.resource_version, node))
    expectations = expectations_module.Expectations(timeout_seconds=30.0)
    dispatcher = dispatcher_module.Dispatcher(view, expectations, lambda _key: None, lambda _key: None)
    for other in range(other_jobs):
        dispatcher.index(
            f"bench/job-{other + 1}",
            ImagePullJob.from_dict(_job_body(f"uid-other-{other}", f"bench/other-{other}:v1", other + 1, None)),
        )
    unstarted = ImagePullJob.from_dict(
        _job_body(JOB_UID, IMAGE, 0, {"startTime": "2026-01-01T11:00:00Z", "desired": 0})
    )
    targeted = targets.select_targets(unstarted.spec, "bench", view.node_image_map(), [])
    settled = job_status.observe(unstarted, targets=targeted, image=entry.image, tag=entry.tag, now=NOW)
    raw_status = settled.status.to_dict()
    job = ImagePullJob.from_dict(_job_body(JOB_UID, IMAGE, 0, raw_status))
    dispatcher.index("bench/job-0", job)
    return Scenario(count, other_jobs, view, dispatcher, expectations, job, raw_status)


def decision(scenario: Scenario, clock: Callable[[], float] | None = None) -> dict[str, float]:
    """One reconcile's decision, part by part as `JobReconciler._sync` runs it; seconds per part when timed."""
    tick = clock or (lambda: 0.0)
    job, view, expectations = scenario.job, scenario.view, scenario.expectations
    spent: dict[str, float] = {}
    started = tick()

    def lap(part: str) -> None:
        nonlocal started
        ended = tick()
        spent[part] = ended - started
        started = ended

    entry = imageref.parse(job.spec.image).nodeimage_entry()
    node_images = view.node_image_map()
    lap("node map")
    chosen_targets = targets.select_targets(job.spec, job.metadata.namespace, node_images, [])
    lap("targets")
    mono = 0.0
    for node in chosen_targets:
        name = dispatcher_module.node_image_key(node.metadata.name)
        if not expectations.satisfied(name, node.metadata.resource_version, mono, waiter="bench/job-0"):
            raise AssertionError("nothing is pending in this scenario")
    lap("expectations")
    observation = job_status.observe(job, targets=chosen_targets, image=entry.image, tag=entry.tag, now=NOW)
    lap("observe")
    free = rollout.slots(job.spec.parallelism, observation.status.active)
    chosen = rollout.choose_nodes(observation.not_synced, free)
    lap("choose")
    chosen += stalepolicies.stale_policy_nodes(
        job, observation.owned, scenario.dispatcher.specs_by_uid, exclude=set(chosen)
    )
    lap("stale policies")
    changed = observation.status.to_dict() != scenario.raw_status
    lap("status compare")
    if changed or chosen:
        raise AssertionError("the scenario is a settled state: nothing to write")
    return spent


def caps_count(scenario: Scenario) -> float:
    """Seconds to count the pulls in flight as a reconcile does with `--max-pulls-in-flight` (off by default).

    One NodeImage is replaced by an equal new object first: a reconcile is woken by a change, and the count
    only reuses what it counted from the very same objects.
    """
    cache = scenario.view.node_images
    node = cache.all()[scenario.nodes // 2]
    cache.informer.store.upsert(
        store.Entry(node.metadata.name, node.metadata.resource_version, dataclasses.replace(node))
    )
    started = time.perf_counter()
    scenario.in_flight.count(cache.all())
    return time.perf_counter() - started


def measure(scenario: Scenario, rounds: int = ROUNDS) -> dict[str, float]:
    """Milliseconds per part: the best of `rounds` reconciles."""
    best: dict[str, float] = {}
    scenario.in_flight.count(scenario.view.node_images.all())
    for _ in range(rounds):
        spent = decision(scenario, time.perf_counter)
        spent[CAPS_PART] = caps_count(scenario)
        for part, seconds in spent.items():
            best[part] = min(best.get(part, seconds), seconds)
    return {part: seconds * 1000 for part, seconds in best.items()}


def profile(scenario: Scenario, top: int) -> None:
    """Print the `top` functions by own time over a few reconciles."""
    profiler = cProfile.Profile()
    profiler.runcall(lambda: [decision(scenario) for _ in range(ROUNDS)])
    print(f"\n## cProfile: {scenario.nodes} nodes, {scenario.other_jobs} other jobs ({ROUNDS} reconciles)")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(top)


def table(rows: Sequence[tuple[Scenario, dict[str, float]]]) -> str:
    """A markdown table: one row per scenario, one column per part and their total (ms per reconcile), then
    the in-flight count a reconcile adds when a pull cap is set."""
    head = ["nodes", "other jobs", *PART_NAMES, "total", f"{CAPS_PART} (caps on)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for scenario, parts in rows:
        cells = [f"{scenario.nodes:,}", str(scenario.other_jobs)]
        cells += [f"{parts[name]:.2f}" for name in PART_NAMES]
        cells.append(f"{sum(parts[name] for name in PART_NAMES):.2f}")
        cells.append(f"{parts[CAPS_PART]:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--nodes", type=int, nargs="*", default=list(SIZES))
    parser.add_argument("--other-jobs", type=int, default=OTHER_JOBS)
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--profile", type=int, default=0, metavar="TOP", help="print the TOP hottest functions")
    args = parser.parse_args(argv)
    rows = []
    for count in args.nodes:
        for others in (0, args.other_jobs):
            scenario = build(count, others)
            rows.append((scenario, measure(scenario, args.rounds)))
            if args.profile:
                profile(scenario, args.profile)
    print(f"ms per reconcile (best of {args.rounds}), one job over every node, parallelism {PARALLELISM}:")
    print(table(rows))


if __name__ == "__main__":
    main()
