"""Issue 9 items 3 and 4: the idle cost of a steady state, and how many reconciles one event triggers.

Same setup as the fan-out benchmark (`bench.simcluster`): J jobs (even: `Always`, odd: `Never`) each over all
N nodes with parallelism N, run to steady state (every `Always` job complete, every `Never` job succeeded on
every node). Then, for a window: reconciles/s (the services' own Prometheus counters), API requests/s (audit
log), CPU and RSS of each process. Then one event: the tag of one `Always` job disappears from one node's
NodeImage spec (what nodeimage_sync does when a tag's TTL expires), and the reconciles in the next seconds are
counted; the target is one scheduler reconcile (the job owning the tag) and one nodeimage_sync reconcile.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from bench import fanout, procstats
from bench.audit import Window, count_requests, utcnow
from bench.report import Section, Table
from bench.simcluster import GROUP, IDENTITIES, VERSION, SimCluster
from localcluster.process import wait_until

TITLE = "Idle cost and one event, one reconcile"
NAMESPACE = "idle"
SERVICES = ("scheduler", "nodeimage_sync", "puller")
RECONCILE_METRICS = {"scheduler": "prepull_scheduler_reconciles", "nodeimage_sync": "prepull_nodeimage_sync_reconciles"}
EVENT_SECONDS = 10.0


@dataclass(frozen=True)
class Scale:
    jobs: int
    nodes: int
    window: float


QUICK = Scale(jobs=6, nodes=50, window=15.0)
FULL = Scale(jobs=200, nodes=1000, window=60.0)


@dataclass
class IdleResult:
    scale: Scale
    steady_seconds: float = 0.0
    reconciles: dict[str, float] = field(default_factory=dict)
    requests: dict[str, int] = field(default_factory=dict)
    lease_requests: dict[str, int] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)
    rss: dict[str, int] = field(default_factory=dict)
    event_reconciles: dict[str, float] = field(default_factory=dict)


def reconciles(sim: SimCluster, service: str) -> float:
    """The service's reconcile counter, summed over its labels."""
    assert sim.system is not None
    text = sim.system.services[service].metrics()
    name = RECONCILE_METRICS[service]
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        if family.name == name
        for sample in family.samples
        if sample.name == f"{name}_total"
    )


def _spec(index: int, nodes: int) -> dict[str, object]:
    policy = "Always" if index % 2 == 0 else "Never"
    return {"image": f"bench.local/idle-{index}/app:1", "parallelism": nodes, "completionPolicy": {"type": policy}}


def _steady(sim: SimCluster, scale: Scale) -> Callable[[], bool]:
    def steady() -> bool:
        for index in range(scale.jobs):
            status = sim.job_status(NAMESPACE, f"job-{index}")
            done = bool(status.get("completionTime")) if index % 2 == 0 else status.get("succeeded") == scale.nodes
            if not done:
                return False
        return True

    return steady


def measure(work: Path, scale: Scale) -> IdleResult:
    result = IdleResult(scale)
    sim = SimCluster(work / f"idle-{scale.jobs}x{scale.nodes}", scale.nodes)
    try:
        sim.start()
        sim.start_services()
        wait_until(lambda: sim.nodeimage_count() >= scale.nodes, timeout=600, interval=0.5, what="NodeImages")
        sim.start_pullers(pull_latency="0s")
        started = time.monotonic()
        for index in range(scale.jobs):
            sim.create_job(NAMESPACE, f"job-{index}", _spec(index, scale.nodes))
        wait_until(_steady(sim, scale), timeout=1800, interval=2.0, what="steady state")
        result.steady_seconds = time.monotonic() - started
        time.sleep(5.0)
        _idle_window(sim, result)
        _one_event(sim, result)
    finally:
        sim.stop()
    return result


def _idle_window(sim: SimCluster, result: IdleResult) -> None:
    pids = fanout.pids(sim)
    cpu_before = {name: procstats.usage_of(pid).cpu_seconds for name, pid in pids.items()}
    before = {name: reconciles(sim, name) for name in RECONCILE_METRICS}
    start = utcnow()
    time.sleep(result.scale.window)
    window = Window(start, utcnow())
    after = {name: reconciles(sim, name) for name in RECONCILE_METRICS}
    result.reconciles = {name: (after[name] - before[name]) / window.seconds for name in RECONCILE_METRICS}
    for name, pid in pids.items():
        usage = procstats.usage_of(pid)
        result.cpu[name] = usage.cpu_seconds - cpu_before[name]
        result.rss[name] = usage.rss_bytes
    time.sleep(1.0)
    counts = count_requests(sim.control.audit_log, window, IDENTITIES)
    result.requests = {name: counts[name].total for name in SERVICES}
    result.lease_requests = {name: counts[name].leases for name in SERVICES}


def _one_event(sim: SimCluster, result: IdleResult) -> None:
    before = {name: reconciles(sim, name) for name in RECONCILE_METRICS}
    node = sim.node_names[0]
    patch = {"spec": {"images": {"bench.local/idle-0/app": None}}}
    sim.custom().patch_cluster_custom_object(GROUP, VERSION, "nodeimages", node, patch)
    time.sleep(EVENT_SECONDS)
    after = {name: reconciles(sim, name) for name in RECONCILE_METRICS}
    result.event_reconciles = {name: after[name] - before[name] for name in RECONCILE_METRICS}


def section(work: Path, scale: Scale, mode: str) -> Section:
    r = measure(work, scale)
    out = Section(TITLE, mode)
    out.add(
        f"{scale.jobs} jobs (half `Always`, half `Never`) x {scale.nodes} simulated nodes, parallelism = nodes, "
        f"instant pulls; steady state reached {r.steady_seconds:.0f} s after the first job was created. "
        f"Idle window {scale.window:.0f} s. Setup as in the fan-out section."
    )
    idle = Table(["service", "reconciles/s", "API requests/s (of which Lease)", "CPU s in window", "RSS", "target"])
    targets = {"scheduler": "≈ 0/s; RSS < 250 MB", "nodeimage_sync": "≈ 0/s; RSS < 250 MB", "puller": "≈ 0/s"}
    for name in SERVICES:
        rate = f"{r.reconciles[name]:.2f}" if name in r.reconciles else "n/a"
        requests = f"{r.requests[name] / scale.window:.2f} ({r.lease_requests[name] / scale.window:.2f})"
        label = name if name != "puller" else f"puller ({scale.nodes} agents, summed over host processes)"
        idle.add(label, rate, requests, f"{r.cpu[name]:.1f}", procstats.mib(r.rss[name]), targets[name])
    out.add(idle)
    event = Table(["service", f"reconciles in {EVENT_SECONDS:.0f} s after one tag disappears", "target"])
    event.add("scheduler", f"{r.event_reconciles['scheduler']:.0f}", "1 (the job owning the tag)")
    event.add("nodeimage_sync", f"{r.event_reconciles['nodeimage_sync']:.0f}", "1 (that NodeImage)")
    out.add("One event: the `Always` job-0 tag removed from node 1's NodeImage spec (as a TTL expiry does):")
    out.add(event)
    return out
