"""Issue 9 items 6 and 7 at scale without node agents: NodeImage creation, service RSS, restart.

N Nodes registered through the API (no agents, no jobs), then:

- nodeimage_sync and the scheduler started (creation delay 0 s): time until N NodeImages exist (target: 3,000
  within 30 s);
- RSS of both services once idle;
- restart of both (graceful stop, new processes): time until both report ready (leading), and until
  nodeimage_sync acts again (a Node registered right after the restart gets its NodeImage).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

from bench import procstats
from bench.report import Section, Table
from bench.simcluster import SimCluster
from localcluster import nodes
from localcluster.process import wait_until

TITLE = "NodeImage creation, RSS and restart at scale"
SETTLE_SECONDS = 10.0
QUICK_NODES = 300
FULL_NODES = 3000


@dataclass
class Result:
    nodes: int
    create_seconds: float = 0.0
    rss: dict[str, int] | None = None
    ready_seconds: float = 0.0
    act_seconds: float = 0.0


def measure(work: Path, count: int) -> Result:
    result = Result(count)
    sim = SimCluster(work / f"nodeimages-{count}", count)
    try:
        sim.start()
        started = time.monotonic()
        sim.start_services()
        wait_until(lambda: sim.nodeimage_count() >= count, timeout=900, interval=0.5, what=f"{count} NodeImages")
        result.create_seconds = time.monotonic() - started
        threading.Event().wait(SETTLE_SECONDS)
        result.rss = {
            name: procstats.usage(sim.service_pid(name)).rss_bytes for name in ("scheduler", "nodeimage_sync")
        }
        sim.stop_services()
        started = time.monotonic()
        sim.start_services()
        result.ready_seconds = time.monotonic() - started
        nodes.register_node(sim.api, "node-after-restart")
        wait_until(lambda: sim.nodeimage_count() >= count + 1, timeout=300, interval=0.2, what="a new NodeImage")
        result.act_seconds = time.monotonic() - started
    finally:
        sim.stop()
    return result


def section(work: Path, count: int, mode: str) -> Section:
    r = measure(work, count)
    assert r.rss is not None
    out = Section(TITLE, mode)
    out.add(
        f"{count} Nodes registered through the API, no node agents and no jobs; nodeimage_sync with "
        "`--creation-delay 0s` (the Nodes are already Ready). Times include process start."
    )
    table = Table(["measurement", "result", "target"])
    rate = count / r.create_seconds
    table.add(f"start → {count} NodeImages exist", f"{r.create_seconds:.1f} s ({rate:.0f}/s)", "3,000 within 30 s")
    table.add("scheduler RSS, idle", procstats.mib(r.rss["scheduler"]), "< 250 MB")
    table.add("nodeimage_sync RSS, idle", procstats.mib(r.rss["nodeimage_sync"]), "< 250 MB")
    table.add("restart of both → both ready (leading)", f"{r.ready_seconds:.1f} s", "")
    table.add("restart of both → a new Node's NodeImage exists", f"{r.act_seconds:.1f} s", "")
    out.add(table)
    return out
