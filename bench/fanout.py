"""Issue 9 items 1, 2 and 7 (NodeImage creation): fan-out over simulated nodes, against the floor.

One cluster per node count N: N Nodes registered through the API, nodeimage_sync and the scheduler as processes,
N node agents (the puller's own code, `localcluster.simnodes`) on simulated runtimes. Per N:

- NodeImage creation: nodeimage_sync started with N Ready Nodes (creation delay 0 s) until N NodeImages exist;
- fan-out: one `Always` job with parallelism N and instant pulls, from create until `completionTime`; API
  requests of each service in that window (apiserver audit log), CPU seconds and peak RSS of each process;
- parallelism (only at the largest N of the run): parallelism 10 and 100 with 1 s pulls, against the ideal
  ceil(N / parallelism) x 1 s;
- the floor: services stopped, the same essential writes (one spec and one status write per node) from a
  worker pool; the ratio fan-out / floor.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench import floor, procstats
from bench.audit import Window, count_requests, utcnow
from bench.report import Section, Table
from bench.simcluster import IDENTITIES, SimCluster
from localcluster.process import wait_until

NAMESPACE = "bench"
SERVICES = ("scheduler", "nodeimage_sync", "puller")
PARALLELISMS = (10, 100)
PULL_SECONDS = 1.0


@dataclass
class FanoutResult:
    nodes: int
    nodeimages_seconds: float = 0.0
    seconds: float = 0.0
    succeeded: int = 0
    status: dict[str, object] = field(default_factory=dict)
    requests: dict[str, int] = field(default_factory=dict)
    lease_requests: dict[str, int] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)
    peak_rss: dict[str, int] = field(default_factory=dict)
    floor: floor.FloorResult | None = None
    parallel: dict[int, float] = field(default_factory=dict)
    parallel_cpu: dict[int, dict[str, float]] = field(default_factory=dict)


def pids(sim: SimCluster) -> dict[str, list[int]]:
    return {
        "scheduler": [sim.service_pid("scheduler")],
        "nodeimage_sync": [sim.service_pid("nodeimage_sync")],
        "puller": sim.host_pids,
    }


def measure(state: Path, nodes: int, *, with_parallelism: bool) -> FanoutResult:
    result = FanoutResult(nodes=nodes)
    sim = SimCluster(state / f"fanout-{nodes}", nodes)
    try:
        sim.start()
        started = time.monotonic()
        sim.start_services()
        wait_until(lambda: sim.nodeimage_count() >= nodes, timeout=600, interval=0.5, what=f"{nodes} NodeImages")
        result.nodeimages_seconds = time.monotonic() - started
        sim.start_pullers(pull_latency="0s")
        _fanout(sim, result)
        if with_parallelism:
            sim.start_pullers(pull_latency=f"{PULL_SECONDS}s")
            for parallelism in PARALLELISMS:
                name = f"parallel-{parallelism}"
                spec = _spec(f"bench.local/{name}/app:1", parallelism)
                processes = pids(sim)
                before = {key: procstats.usage_of(pid).cpu_seconds for key, pid in processes.items()}
                sim.create_job(NAMESPACE, name, spec)
                timeout = _ideal(nodes, parallelism) * 5 + 300
                result.parallel[parallelism], _ = sim.wait_complete(NAMESPACE, name, timeout=timeout)
                result.parallel_cpu[parallelism] = {
                    key: procstats.usage_of(pid).cpu_seconds - before[key] for key, pid in processes.items()
                }
        sim.stop_pullers()
        sim.stop_services()
        client = sim.admin_client(pool_maxsize=max(floor.WORKER_COUNTS) + 8)
        try:
            result.floor = floor.floor_seconds(client, sim.node_names, trial=str(nodes))
        finally:
            client.close()
    finally:
        sim.stop()
    return result


def _spec(image: str, parallelism: int) -> dict[str, object]:
    return {"image": image, "parallelism": parallelism, "completionPolicy": {"type": "Always"}}


def _ideal(nodes: int, parallelism: int) -> float:
    return math.ceil(nodes / parallelism) * PULL_SECONDS


def _fanout(sim: SimCluster, result: FanoutResult) -> None:
    processes = pids(sim)
    before = {name: procstats.usage_of(pid).cpu_seconds for name, pid in processes.items()}
    window_start = utcnow()
    sim.create_job(NAMESPACE, "fanout", _spec("bench.local/fanout/app:1", result.nodes))
    result.seconds, status = sim.wait_complete(NAMESPACE, "fanout", timeout=600 + result.nodes)
    window = Window(window_start, utcnow())
    result.succeeded = int(status.get("succeeded") or 0)
    result.status = status
    for name, pid in processes.items():
        usage = procstats.usage_of(pid)
        result.cpu[name] = usage.cpu_seconds - before[name]
        result.peak_rss[name] = usage.peak_rss_bytes
    time.sleep(1.0)  # the audit log is written as requests finish; let the last ones land
    counts = count_requests(sim.control.audit_log, window, IDENTITIES)
    result.requests = {name: counts[name].total for name in SERVICES}
    result.lease_requests = {name: counts[name].leases for name in SERVICES}


def sections(results: Sequence[FanoutResult], mode: str) -> list[Section]:
    fan = Section("Fan-out over simulated nodes", mode)
    fan.add(NOTES)
    table = Table(["nodes", "create → completionTime", "floor (workers)", "ratio", "target", "succeeded"])
    for r in results:
        assert r.floor is not None
        ratio = r.seconds / r.floor.seconds
        target = "≤ 1.5x at 1,000 nodes" if r.nodes == 1000 else ""
        table.add(
            r.nodes,
            f"{r.seconds:.1f} s",
            f"{r.floor.seconds:.1f} s ({r.floor.workers})",
            f"{ratio:.2f}x",
            target,
            f"{r.succeeded}/{r.nodes}",
        )
    fan.add(table)
    cost = Table(["nodes", "service", "API requests (per node)", "of which Lease", "CPU s in window", "peak RSS"])
    for r in results:
        for name in SERVICES:
            cost.add(
                r.nodes,
                name,
                f"{r.requests[name]} ({r.requests[name] / r.nodes:.2f})",
                r.lease_requests[name],
                f"{r.cpu[name]:.1f}",
                procstats.mib(r.peak_rss[name]),
            )
    fan.add(
        "API requests, CPU and peak RSS during the fan-out window (puller: all agents, summed over host processes):"
    )
    fan.add(cost)
    creation = Table(["nodes", "nodeimage_sync start → all NodeImages exist", "rate", "target"])
    for r in results:
        creation.add(
            r.nodes,
            f"{r.nodeimages_seconds:.1f} s",
            f"{r.nodes / r.nodeimages_seconds:.0f}/s",
            "3,000 within 30 s (≥ 100/s)",
        )
    fan.add("NodeImage creation (nodeimage_sync, `--creation-delay 0s`, Nodes already Ready; includes process start):")
    fan.add(creation)
    out = [fan]
    parallel = [r for r in results if r.parallel]
    if parallel:
        par = Section("Parallelism with 1 s pulls", mode)
        columns = ["nodes", "parallelism", "completion", "ideal ceil(N/p) x 1 s", "ratio", "target"]
        table = Table([*columns, "CPU s: scheduler / nodeimage_sync / pullers"])
        for r in parallel:
            for p, seconds in sorted(r.parallel.items()):
                ideal = _ideal(r.nodes, p)
                cpu = " / ".join(f"{r.parallel_cpu[p][name]:.1f}" for name in SERVICES)
                table.add(r.nodes, p, f"{seconds:.1f} s", f"{ideal:.0f} s", f"{seconds / ideal:.2f}x", "≤ 1.2x", cpu)
        par.add(table)
        out.append(par)
    return out


NOTES = """\
Setup: Node objects registered through the API (no kubelet, no containerd); nodeimage_sync and the scheduler as
their own processes under their own ServiceAccounts with the RBAC from `deploy/`; one node agent per node,
hosted 100 per `localcluster.simnodes` process: the puller's unchanged `PullerApp` (own NodeImage watch, controller,
status writer, event recorder per agent) over the puller issue's simulated CRI (`SimulatedRuntime`, instant
pulls) called in-process instead of over a socket. The agents share one ServiceAccount bound to the puller's
ClusterRole rather than node-bound tokens, so the node admission policy is not evaluated, and they call neither
the Credentials nor the inventory service. API requests are counted from the apiserver's audit log by
ServiceAccount, for requests received between job creation and completion (watches count when they end, so
long-lived watches opened earlier are not in the window). The floor is measured in the same cluster after the
services are stopped: one spec merge-patch and one status merge-patch per NodeImage with the `kubernetes`
client from a pool of 8 or 32 threads, whichever was faster. Completion is seen by polling every 0.2 s."""
