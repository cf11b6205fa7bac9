"""Local cluster start times (binaries cached): `LocalCluster.start()` and `make cluster-up` through the CLI."""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.report import REPO, Section, Table
from localcluster import cluster

TITLE = "Local cluster start (binaries cached)"


def timed(action: Callable[[], object]) -> float:
    started = time.monotonic()
    action()
    return time.monotonic() - started


def cluster_up_seconds(runs: int, nodes: int) -> list[float]:
    """Warm start of the whole local cluster (binaries cached): fresh state directory each run."""
    samples = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="bench-") as state:
            local = cluster.LocalCluster(Path(state), node_count=nodes)
            samples.append(timed(local.start))
            local.stop()
    return samples


def cluster_up_cli_seconds() -> tuple[float, float]:
    """`python -m localcluster up` as `make cluster-up` runs it: first start, then the re-use of the running one."""
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as state:
        command = [sys.executable, "-m", "localcluster", "--state-dir", state]
        first = timed(lambda: subprocess.run([*command, "up"], cwd=REPO, check=True, capture_output=True))
        again = timed(lambda: subprocess.run([*command, "up"], cwd=REPO, check=True, capture_output=True))
        subprocess.run([*command, "down"], cwd=REPO, check=True, capture_output=True)
    return first, again


def section(runs: int, nodes: int, mode: str) -> Section:
    samples = cluster_up_seconds(runs, nodes)
    first, again = cluster_up_cli_seconds()
    table = Table(["measurement", "result", "target"])
    table.add(
        f"`LocalCluster.start()`, {nodes} nodes, median of {runs}",
        f"{statistics.median(samples):.1f} s (min {min(samples):.1f}, max {max(samples):.1f})",
        "< 20 s",
    )
    table.add(
        f"`make cluster-up` from nothing ({cluster.DEFAULT_NODE_COUNT} nodes, CLI process included)",
        f"{first:.1f} s",
        "< 20 s",
    )
    table.add("`make cluster-up` again (re-uses the running cluster)", f"{again:.1f} s", "")
    result = Section(TITLE, mode)
    result.add(table)
    return result
