"""Issue 9 items 3 and 4: the idle cost of a steady state, and how many reconciles one event triggers.

Same cluster as the fan-out benchmark (`bench.simcluster`): N simulated nodes, nodeimage_sync and the scheduler
as processes, N node agents. J jobs (even: `Always`, odd: `Never`) each target all N nodes. The steady state
is seeded (`bench.seeding`: every NodeImage written once with all J tag entries, once with every tag
Succeeded), then the agents and the services start and settle it themselves: the scheduler completes the
`Always` jobs and writes the `Never` jobs' counts. Their NodeImage writes from service start to the end of
the idle window are counted in the audit log: zero means the seed is what they would have written.

Then, for a window: reconciles/s (the services' own Prometheus counters), API requests/s (audit log), CPU and
RSS of each process. Then two events, one at a time: the first node's tag of job-0 (`Always`, complete) and
later of job-1 (`Never`) were seeded as finished one TTL before a set moment, so at that moment nodeimage_sync
drops the tag (a real expiry). The reconciles from just before until shortly after are counted, and the
writes each service made, by object. Target: only the job owning the tag reconciles (a complete `Always`
job need not; a `Never` job writes its tag again: the daily re-pull), and nodeimage_sync reconciles that
NodeImage once.
"""

from __future__ import annotations

import collections
import datetime
import time
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from bench import fanout, procstats, seeding, servicestart
from bench.audit import Window, count_requests, count_writes, utcnow, written_objects
from bench.etcdstore import EtcdStore
from bench.report import Section, Table
from bench.simcluster import GROUP, IDENTITIES, VERSION, SimCluster
from localcluster.process import wait_until

TITLE = "Idle cost and one event, one reconcile"
NAMESPACE = "idle"
SERVICES = ("scheduler", "nodeimage_sync", "puller")
RECONCILE_METRICS = {"scheduler": "prepull_scheduler_reconciles", "nodeimage_sync": "prepull_nodeimage_sync_reconciles"}
EVENT_SECONDS = 10.0
BEFORE_EXPIRY = 3.0
"""The event count starts this long before the tag's TTL runs out (nodeimage_sync acts on a requeue)."""


@dataclass(frozen=True)
class Scale:
    jobs: int
    nodes: int
    window: float
    expiry_after: float
    """Seconds from the first node's seed (the last written) until its first tag's TTL runs out: long enough to
    start the agents and the services, settle and idle first."""
    agents: bool = True
    """Run the N node agents."""


QUICK = Scale(jobs=6, nodes=50, window=15.0, expiry_after=60.0)
FULL = Scale(jobs=200, nodes=1000, window=60.0, expiry_after=600.0)
PROBE_LIMIT = 60.0
START_TIMEOUT = 900.0
"""Longest wait for one probed list page."""
EXPIRING_JOBS = (0, 1)
"""Job indexes whose first-node tag expires, `EVENT_GAP` seconds apart: one `Always`, one `Never`."""
EVENT_GAP = 30.0


@dataclass
class EventResult:
    """One tag expiry and what it set off."""

    job: str
    policy: str
    ttl: int = 0
    expired_after: float | None = None
    """Seconds from the TTL's end until the tag was gone from spec; None when it did not go within a minute."""
    reconciles: dict[str, float] = field(default_factory=dict)
    writes: dict[str, list[str]] = field(default_factory=dict)
    """Per service, the objects it wrote in the event's window (`resource/name[/subresource]`)."""


@dataclass
class IdleResult:
    scale: Scale
    seed: seeding.SeedResult = field(default_factory=seeding.SeedResult)
    listability: seeding.Listability = field(default_factory=seeding.Listability)
    pullers_seconds: float = 0.0
    ready_seconds: float = 0.0
    settle_seconds: float = 0.0
    seed_check: dict[str, int] = field(default_factory=dict)
    """NodeImage writes per service from service start to the end of the idle window (0: the seed holds)."""
    job_writes: int = 0
    reconciles: dict[str, float] = field(default_factory=dict)
    requests: dict[str, int] = field(default_factory=dict)
    lease_requests: dict[str, int] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)
    rss: dict[str, int] = field(default_factory=dict)
    peak_rss: dict[str, int] = field(default_factory=dict)
    load: str = ""
    events: list[EventResult] = field(default_factory=list)
    expired_early: bool = False
    """The first TTL ran out before the idle window ended (the window then holds the event)."""


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


def measure(work: Path, scale: Scale) -> IdleResult:
    result = IdleResult(scale)
    sim = SimCluster(work / f"idle-{scale.jobs}x{scale.nodes}", scale.nodes)
    try:
        sim.start()
        sim.start_services()  # nodeimage_sync creates the NodeImages, as in production
        wait_until(lambda: sim.nodeimage_count() >= scale.nodes, timeout=600, interval=0.5, what="NodeImages")
        sim.stop_services()
        seeder = seeding.Seeder(sim.api, NAMESPACE, etcd=EtcdStore(sim.control.etcd_url))
        sim.ensure_namespace(NAMESPACE)
        seeder.create_jobs({seeding.job_name(i): seeding.job_spec(i, scale.nodes) for i in range(scale.jobs)})
        expiring = [
            seeding.Expiring(sim.node_names[0], seeding.job_name(index), scale.expiry_after + k * EVENT_GAP)
            for k, index in enumerate(EXPIRING_JOBS)
        ]
        first, *others = sim.node_names
        result.seed = seeder.seed(others)
        result.listability = seeder.make_listable(sim.control.kubeconfig, others, limit=PROBE_LIMIT)
        seeder.seed([first], expiring=expiring, result=result.seed)  # its TTLs count from here
        if scale.agents:
            started = time.monotonic()
            sim.start_pullers(pull_latency="0s")
            result.pullers_seconds = time.monotonic() - started
        services_start = utcnow()
        started = time.monotonic()
        result.ready_seconds = servicestart.start_services(sim, timeout=START_TIMEOUT)
        check = seeding.settled(sim.custom(), NAMESPACE, result.seed.targets)
        wait_until(check, timeout=1800, interval=2.0, what="steady state")
        result.settle_seconds = time.monotonic() - started
        time.sleep(5.0)
        _idle_window(sim, result)
        checked = Window(services_start, utcnow())
        result.expired_early = utcnow() > min(at for _, at in result.seed.expiring.values())
        time.sleep(1.0)
        result.seed_check = count_writes(sim.control.audit_log, checked, IDENTITIES, "nodeimages")
        result.job_writes = count_writes(sim.control.audit_log, checked, IDENTITIES, "imagepulljobs")["scheduler"]
        for due in expiring:
            ttl, at = result.seed.expiring[due.job]
            result.events.append(_one_event(sim, due.node, due.job, ttl, at))
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
    result.load = procstats.load_average()
    after = {name: reconciles(sim, name) for name in RECONCILE_METRICS}
    result.reconciles = {name: (after[name] - before[name]) / window.seconds for name in RECONCILE_METRICS}
    for name, pid in pids.items():
        usage = procstats.usage_of(pid)
        result.cpu[name] = usage.cpu_seconds - cpu_before[name]
        result.rss[name] = usage.rss_bytes
        result.peak_rss[name] = usage.peak_rss_bytes
    time.sleep(1.0)
    counts = count_requests(sim.control.audit_log, window, IDENTITIES)
    result.requests = {name: counts[name].total for name in SERVICES}
    result.lease_requests = {name: counts[name].leases for name in SERVICES}


def _one_event(sim: SimCluster, node: str, job: str, ttl: int, at: datetime.datetime) -> EventResult:
    """Reconciles and writes from just before the tag's TTL runs out at `at` until `EVENT_SECONDS` after it left."""
    index = int(job.rpartition("-")[2])
    event = EventResult(job=job, policy="Always" if index % 2 == 0 else "Never", ttl=ttl)
    time.sleep(max(0.0, (at - utcnow()).total_seconds() - BEFORE_EXPIRY))
    start = utcnow()
    before = {name: reconciles(sim, name) for name in RECONCILE_METRICS}
    image = seeding.image_of(index).rpartition(":")[0]

    def gone() -> bool:
        nodeimage = sim.custom().get_cluster_custom_object(GROUP, VERSION, "nodeimages", node)
        return image not in ((nodeimage.get("spec") or {}).get("images") or {})

    try:
        wait_until(gone, timeout=BEFORE_EXPIRY + 60.0, interval=0.25, what="the seeded tag to expire")
        event.expired_after = (utcnow() - at).total_seconds()
    except TimeoutError:
        event.expired_after = None
    time.sleep(EVENT_SECONDS)
    after = {name: reconciles(sim, name) for name in RECONCILE_METRICS}
    event.reconciles = {name: after[name] - before[name] for name in RECONCILE_METRICS}
    time.sleep(1.0)
    event.writes = written_objects(sim.control.audit_log, Window(start, utcnow()), IDENTITIES)
    return event


def section(work: Path, scale: Scale, mode: str) -> Section:
    r = measure(work, scale)
    out = Section(TITLE, mode)
    out.add(_setup(r))
    idle = Table(
        ["service", "reconciles/s", "API requests/s (of which Lease)", "CPU s in window", "RSS (peak)", "target"]
    )
    targets = {"scheduler": "≈ 0/s; RSS < 250 MB", "nodeimage_sync": "≈ 0/s; RSS < 250 MB", "puller": "≈ 0/s"}
    for name in SERVICES if scale.agents else SERVICES[:2]:
        rate = f"{r.reconciles[name]:.2f}" if name in r.reconciles else "n/a"
        requests = f"{r.requests[name] / scale.window:.2f} ({r.lease_requests[name] / scale.window:.2f})"
        label = name if name != "puller" else f"puller ({scale.nodes} agents, summed over host processes)"
        rss = f"{procstats.mib(r.rss[name])} ({procstats.mib(r.peak_rss[name])})"
        idle.add(label, rate, requests, f"{r.cpu[name]:.1f}", rss, targets[name])
    early = (
        " The first TTL ended before the idle window did: the window includes that event." if r.expired_early else ""
    )
    out.add(f"Idle window {scale.window:.0f} s; load average (1 / 5 / 15 min) at its end: {r.load}.{early}")
    out.add(idle)
    out.add(
        "One event at a time, a real TTL expiry: the first node's tag of the job was seeded as written and "
        "finished one TTL before a set moment after the idle window, so nodeimage_sync drops it then. Counted "
        f"from {BEFORE_EXPIRY:.0f} s before that moment until {EVENT_SECONDS:.0f} s after the tag left the spec; "
        "writes from the audit log, by object (`nodeimages/<node>[/status]`, `imagepulljobs/<job>[/status]`)."
    )
    event = Table(
        ["tag of", "TTL", "gone after", "scheduler reconciles", "nodeimage_sync reconciles", "writes", "target"]
    )
    for e in r.events:
        gone = f"{e.expired_after:.1f} s" if e.expired_after is not None else "not within 60 s"
        writes = "; ".join(f"{name}: {_counted(objects)}" for name, objects in sorted(e.writes.items()) if objects)
        target = (
            "scheduler ≤ 1 (only the owner); nodeimage_sync 1"
            if e.policy == "Always"
            else "scheduler: only the owner (it writes the tag again); nodeimage_sync 1 per change"
        )
        ttl = f"{e.ttl} s"
        scheduler, sync = e.reconciles["scheduler"], e.reconciles["nodeimage_sync"]
        event.add(f"{e.job} (`{e.policy}`)", ttl, gone, f"{scheduler:.0f}", f"{sync:.0f}", writes or "none", target)
    out.add(event)
    return out


def _counted(paths: list[str]) -> str:
    """`a x2, b` for [a, a, b]."""
    counts = collections.Counter(paths)
    return ", ".join(f"`{path}` x{n}" if n > 1 else f"`{path}`" for path, n in sorted(counts.items()))


def _agents_text(r: IdleResult) -> str:
    if r.scale.agents:
        return f"The {r.scale.nodes} agents then started in {r.pullers_seconds:.1f} s, before the services."
    return "No node agents ran, so nothing re-pulls the `Never` tag after its expiry below."


def _setup(r: IdleResult) -> str:
    scale = r.scale
    check = ", ".join(f"{name} {r.seed_check.get(name, 0)}" for name in SERVICES)
    return (
        f"{scale.jobs} jobs (half `Always`, half `Never`) x {scale.nodes} simulated nodes, parallelism = nodes. "
        f"The steady state is seeded (`bench/seeding.py`, whose docstring says how and why): the jobs are created "
        f"with the scheduler's finalizer and trace-context annotation, then every NodeImage gets all "
        f"{scale.jobs} tag entries as the scheduler's `plan_image_spec` decides them (owner reference, version 0, "
        f"pull policy with its default timers and jitter, trace context) and a status with every tag Succeeded "
        f"as the puller's `build_status` makes it. One NodeImage went through the apiserver (spec and status "
        f"merge-patches: {r.seed.api_writes} writes; {r.seed.object_bytes / 1024:.0f} KiB as served, "
        f"`managedFields` included, {r.seed.spec_bytes / 1024:.0f} KiB of it spec), the other "
        f"{r.seed.etcd_writes} were written into etcd with that one's `managedFields`; {r.seed.seconds:.1f} s in "
        f"all. {r.listability.describe()} {_agents_text(r)} The services, started then, were ready "
        f"(leading) after {r.ready_seconds:.1f} s and had settled every job {r.settle_seconds:.1f} s after "
        f"their start (the scheduler made {r.job_writes} ImagePullJob writes: status, and the finalizer of "
        f"complete jobs). Seed check, NodeImage writes from service start to the end of the idle window: "
        f"{check} (0 means the seed is what the services would have written). Setup otherwise as in the "
        f"fan-out section."
    )
