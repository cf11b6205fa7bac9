"""`make bench`: measure, and write the results with date, commit and machine to docs/benchmarks.md.

Targets are reported next to measurements, never asserted: a benchmark informs, a test decides.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from localcluster import cluster

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "docs" / "benchmarks.md"


def machine() -> str:
    """One line naming the machine the numbers were measured on."""
    memory_kib = next(int(line.split()[1]) for line in _lines("/proc/meminfo") if line.startswith("MemTotal"))
    cpu = next(
        (line.split(":", 1)[1].strip() for line in _lines("/proc/cpuinfo") if line.startswith("model name")),
        platform.processor(),
    )
    return f"{os.cpu_count()} cores ({cpu}), {memory_kib / 2**20:.0f} GiB RAM, {platform.platform()}"


def _lines(path: str) -> list[str]:
    return Path(path).read_text().splitlines()


def commit() -> str:
    git = ["git", "rev-parse", "--short", "HEAD"]
    result = subprocess.run(git, cwd=REPO, capture_output=True, text=True, check=False)
    return result.stdout.strip() or "unknown"


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


def report(runs: int, nodes: int) -> str:
    samples = cluster_up_seconds(runs, nodes)
    first, again = cluster_up_cli_seconds()
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return "\n".join(
        [
            "# Benchmarks",
            "",
            f"Measured {now}, commit `{commit()}`, on {machine()}.",
            "Written by `make bench`; targets are reported, not asserted.",
            "",
            "## Local cluster start (binaries cached)",
            "",
            "| measurement | result | target |",
            "|---|---|---|",
            f"| `LocalCluster.start()`, {nodes} nodes, median of {runs} | {statistics.median(samples):.1f} s "
            f"(min {min(samples):.1f}, max {max(samples):.1f}) | < 20 s |",
            f"| `make cluster-up` from nothing ({cluster.DEFAULT_NODE_COUNT} nodes, CLI process included) "
            f"| {first:.1f} s | < 20 s |",
            f"| `make cluster-up` again (re-uses the running cluster) | {again:.1f} s | |",
            "",
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--runs", type=int, default=3, help="default: %(default)s")
    parser.add_argument("--nodes", type=int, default=cluster.DEFAULT_NODE_COUNT, help="default: %(default)s")
    parser.add_argument("--output", type=Path, default=RESULTS, help="default: %(default)s")
    args = parser.parse_args()
    text = report(args.runs, args.nodes)
    args.output.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
