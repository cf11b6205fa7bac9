"""Issue 9 items 6 and 7 at scale without node agents: NodeImage creation, service RSS, restart with jobs.

N Nodes registered through the API, no node agents, then:

- nodeimage_sync and the scheduler started (creation delay 0 s): time until N NodeImages exist (target: 3,000
  within 30 s); RSS of both once idle;
- restart of both without jobs (graceful stop, new processes): time until both report ready (leading), and
  until nodeimage_sync acts again (a Node registered right after the restart gets its NodeImage);
- J jobs, each over a sixth of the nodes (one zone x pool group), seeded (`bench.seeding`: every tag
  Succeeded, as the agents would have reported), then both services started: time until every job is settled
  (the scheduler completes the `Always` jobs and counts the `Never` ones), their RSS after that, and the seed
  check (their NodeImage writes: 0 when the seed is what they would have written);
- restart of both with those jobs present: time until both lead again, until a Node registered right after
  the restart has its NodeImage, and until a job created right after the restart gets its first tag entry
  (the scheduler's first NodeImage write other than into the new Node's, where the `Never` jobs write too;
  from the audit log) and all of them (its status counts every target node active).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench import procstats, seeding, servicestart
from bench.audit import Window, count_writes, first_write, utcnow
from bench.etcdstore import EtcdStore
from bench.report import Section, Table
from bench.simcluster import IDENTITIES, SimCluster
from localcluster import cluster, nodes
from localcluster.process import wait_until

TITLE = "NodeImage creation, RSS and restart at scale"
SETTLE_SECONDS = 10.0
QUICK_NODES = 300
FULL_NODES = 3000
QUICK_JOBS = 6
FULL_JOBS = 200
NAMESPACE = "restart"
NEW_JOB = "job-after-restart"
NEW_NODE = "node-after-restart-2"
SCHEDULER_USER = next(user for user, label in IDENTITIES.items() if label == "scheduler")
ALL_WRITTEN_TIMEOUT = 900.0
PROBE_LIMIT = 60.0
START_TIMEOUT = 900.0
GROUPS = 6
ZONE_LABEL, POOL_LABEL = "topology.kubernetes.io/zone", "prepull.io/pool"


@dataclass
class WithJobs:
    """The part of the run with J seeded jobs."""

    jobs: int
    seed: seeding.SeedResult = field(default_factory=seeding.SeedResult)
    settle_seconds: float = 0.0
    first_ready_seconds: float = 0.0
    rss: dict[str, int] = field(default_factory=dict)
    peak_rss: dict[str, int] = field(default_factory=dict)
    seed_check: dict[str, int] = field(default_factory=dict)
    ready_seconds: float = 0.0
    node_seconds: float = 0.0
    first_tag_seconds: float | None = None
    all_tags_seconds: float | None = None
    tags_written: int = 0
    new_job_targets: int = 0
    listability: seeding.Listability = field(default_factory=seeding.Listability)
    load: str = ""


@dataclass
class Result:
    nodes: int
    create_seconds: float = 0.0
    rss: dict[str, int] = field(default_factory=dict)
    ready_seconds: float = 0.0
    act_seconds: float = 0.0
    with_jobs: WithJobs | None = None


SERVICES = ("scheduler", "nodeimage_sync")


def measure(work: Path, count: int, jobs: int) -> Result:
    result = Result(count)
    sim = SimCluster(work / f"nodeimages-{count}", count)
    try:
        sim.start()
        started = time.monotonic()
        sim.start_services()
        wait_until(lambda: sim.nodeimage_count() >= count, timeout=900, interval=0.5, what=f"{count} NodeImages")
        result.create_seconds = time.monotonic() - started
        threading.Event().wait(SETTLE_SECONDS)
        result.rss = {name: procstats.usage(sim.service_pid(name)).rss_bytes for name in SERVICES}
        sim.stop_services()
        started = time.monotonic()
        sim.start_services()
        result.ready_seconds = time.monotonic() - started
        nodes.register_node(sim.api, "node-after-restart")
        wait_until(lambda: sim.nodeimage_count() >= count + 1, timeout=300, interval=0.2, what="a new NodeImage")
        result.act_seconds = time.monotonic() - started
        if jobs:
            result.with_jobs = _with_jobs(sim, [*sim.node_names, "node-after-restart"], jobs)
    finally:
        sim.stop()
    return result


def group_selector(index: int) -> dict[str, str]:
    """Job `index` targets one of the six (zone, pool) groups of `cluster.default_labels`: a sixth of the nodes."""
    group = index % GROUPS
    return {ZONE_LABEL: cluster.ZONES[group % len(cluster.ZONES)], POOL_LABEL: "general" if group % 2 == 0 else "gpu"}


def _with_jobs(sim: SimCluster, names: list[str], jobs: int) -> WithJobs:
    out = WithJobs(jobs)
    sim.stop_services()
    sim.ensure_namespace(NAMESPACE)
    seeder = seeding.Seeder(sim.api, NAMESPACE, etcd=EtcdStore(sim.control.etcd_url))
    specs = {seeding.job_name(i): seeding.job_spec(i, len(names), group_selector(i)) for i in range(jobs)}
    seeder.create_jobs(specs)
    out.seed = seeder.seed(names)
    out.listability = seeder.make_listable(sim.control.kubeconfig, names, limit=PROBE_LIMIT)
    services_start = utcnow()
    started = time.monotonic()
    out.first_ready_seconds = servicestart.start_services(sim, timeout=START_TIMEOUT)
    wait_until(seeding.settled(sim.custom(), NAMESPACE, out.seed.targets), timeout=1800, interval=2.0, what="jobs")
    out.settle_seconds = time.monotonic() - started
    threading.Event().wait(SETTLE_SECONDS)
    for name in SERVICES:
        usage = procstats.usage(sim.service_pid(name))
        out.rss[name], out.peak_rss[name] = usage.rss_bytes, usage.peak_rss_bytes
    time.sleep(1.0)
    out.seed_check = count_writes(sim.control.audit_log, Window(services_start, utcnow()), IDENTITIES, "nodeimages")
    _restart_with_jobs(sim, out, out.seed.targets[seeding.job_name(0)])
    return out


def _restart_with_jobs(sim: SimCluster, out: WithJobs, targets: int) -> None:
    """Restart both services; a new Node and a new job (over job 0's `targets` nodes) arrive as they start."""
    before = sim.nodeimage_count()
    sim.stop_services()
    restart = utcnow()
    started = time.monotonic()
    ready: list[float] = []

    def start() -> None:
        servicestart.start_services(sim, timeout=START_TIMEOUT)
        ready.append(time.monotonic())

    starter = threading.Thread(target=start, name="restart")
    starter.start()
    nodes.register_node(sim.api, NEW_NODE)
    spec = {"image": "bench.local/after-restart/app:1", "parallelism": targets}
    spec["completionPolicy"] = {"type": "Always"}
    spec["selector"] = {"matchLabels": group_selector(0)}
    sim.create_job(NAMESPACE, NEW_JOB, spec)
    wait_until(lambda: sim.nodeimage_count() > before, timeout=600, interval=0.2, what="a new NodeImage")
    out.node_seconds = time.monotonic() - started
    starter.join()
    if not ready:
        raise RuntimeError("the services did not start again")
    out.ready_seconds = ready[0] - started
    out.new_job_targets = targets
    _wait_all_tags(sim, out, targets, started)
    out.load = procstats.load_average()
    time.sleep(1.0)
    first = first_write(sim.control.audit_log, Window(restart, utcnow()), SCHEDULER_USER, "nodeimages")
    out.first_tag_seconds = None if first is None else (first - restart).total_seconds()


def _wait_all_tags(sim: SimCluster, out: WithJobs, targets: int, started: float) -> None:
    def all_written() -> bool:
        status = sim.job_status(NAMESPACE, NEW_JOB)
        out.tags_written = int(status.get("active") or 0) + int(status.get("succeeded") or 0)
        return out.tags_written >= targets

    try:
        wait_until(all_written, timeout=ALL_WRITTEN_TIMEOUT, interval=1.0, what="the new job's tag entries")
        out.all_tags_seconds = time.monotonic() - started
    except TimeoutError:
        out.all_tags_seconds = None


def section(work: Path, count: int, mode: str, jobs: int = 0) -> Section:
    r = measure(work, count, jobs)
    out = Section(TITLE, mode)
    out.add(
        f"{count} Nodes registered through the API, no node agents; nodeimage_sync with `--creation-delay 0s` "
        "(the Nodes are already Ready). Times include process start."
    )
    table = Table(["measurement", "result", "target"])
    rate = count / r.create_seconds
    table.add(f"start → {count} NodeImages exist", f"{r.create_seconds:.1f} s ({rate:.0f}/s)", "3,000 within 30 s")
    table.add("scheduler RSS, idle, no jobs", procstats.mib(r.rss["scheduler"]), "< 250 MB")
    table.add("nodeimage_sync RSS, idle, no jobs", procstats.mib(r.rss["nodeimage_sync"]), "< 250 MB")
    table.add("restart of both, no jobs → both ready (leading)", f"{r.ready_seconds:.1f} s", "")
    table.add("restart of both, no jobs → a new Node's NodeImage exists", f"{r.act_seconds:.1f} s", "")
    out.add(table)
    if r.with_jobs is not None:
        out.add(_jobs_text(r.with_jobs))
        out.add(_jobs_table(r.with_jobs))
    return out


def _jobs_text(w: WithJobs) -> str:
    check = ", ".join(f"{name} {w.seed_check.get(name, 0)}" for name in SERVICES)
    entries = sum(w.seed.targets.values())
    return (
        f"Then {w.jobs} jobs (half `Always`, half `Never`), each over one of the six zone x pool groups of nodes "
        f"(a sixth of them; {entries} tag entries in all), seeded with the services stopped (`bench/seeding.py`, "
        f"as in the idle section, every tag Succeeded: {w.seed.api_writes} writes through the apiserver and "
        f"{w.seed.etcd_writes} into etcd in {w.seed.seconds:.1f} s; the largest seeded spec "
        f"{w.seed.spec_bytes / 1024:.0f} KiB). {w.listability.describe()} Both services were then started on it. "
        f"Seed check, their NodeImage writes until the RSS was taken: {check}. Then both restarted; right after "
        f"the new processes were launched a Node was registered and an `Always` job over one group "
        f'({w.new_job_targets} nodes) created. No agents run, so the new tags stay unpulled; "all tag entries" '
        f"is the job's status counting every target active. Load average at the end (1 / 5 / 15 min): {w.load}."
    )


def _jobs_table(w: WithJobs) -> Table:
    table = Table(["measurement", "result", "target"])
    table.add("services start → both ready (leading)", f"{w.first_ready_seconds:.1f} s", "")
    table.add(f"services start → all {w.jobs} jobs settled", f"{w.settle_seconds:.1f} s", "")
    for name in SERVICES:
        rss = f"{procstats.mib(w.rss[name])} (peak {procstats.mib(w.peak_rss[name])})"
        table.add(f"{name} RSS, {w.jobs} jobs settled", rss, "< 250 MB")
    table.add("restart → both ready (leading)", f"{w.ready_seconds:.1f} s", "")
    table.add("restart → a new Node's NodeImage exists", f"{w.node_seconds:.1f} s", "")
    first = f"{w.first_tag_seconds:.1f} s" if w.first_tag_seconds is not None else "none"
    table.add("restart → the new job's first tag entry written (audit log)", first, "")
    all_tags = (
        f"{w.all_tags_seconds:.1f} s"
        if w.all_tags_seconds is not None
        else f"not within {ALL_WRITTEN_TIMEOUT:.0f} s ({w.tags_written} of {w.new_job_targets})"
    )
    table.add(f"restart → the new job's {w.new_job_targets} tag entries written (its status)", all_tags, "")
    return table
