"""`make bench` / `make bench-quick`: measure, and merge the results into docs/benchmarks.md.

Targets are reported next to measurements, never asserted: a benchmark informs, a test decides.
`--quick` is the small version CI runs so the harness cannot rot (a few minutes on 2 cores); `--only` runs
some benchmarks and keeps the other sections of the results file as they were.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bench import clusterstart, fanout, idle, nodeimages, pulloverhead
from bench.report import RESULTS, Section, merge
from localcluster import cluster

QUICK_RESULTS = Path(tempfile.gettempdir()) / "prepull-benchmarks-quick.md"
PARALLELISM_NODES = 1000
"""The issue measures parallelism 10 and 100 at 1,000 nodes; other sizes run it at the largest given."""
BENCHMARKS = ("clusterstart", "fanout", "nodeimages", "idle", "pulloverhead")
ORDER = (
    clusterstart.TITLE,
    "Fan-out over simulated nodes",
    "Parallelism with 1 s pulls",
    nodeimages.TITLE,
    idle.TITLE,
    pulloverhead.TITLE,
)


def run(name: str, args: argparse.Namespace, work: Path) -> list[Section]:
    mode = "quick" if args.quick else "full"
    if name == "clusterstart":
        runs = 1 if args.quick else args.runs
        return [clusterstart.section(runs, cluster.DEFAULT_NODE_COUNT, mode)]
    if name == "fanout":
        sizes: Sequence[int] = args.nodes or ([100] if args.quick else [100, 1000, 3000])
        parallelism_at = PARALLELISM_NODES if PARALLELISM_NODES in sizes else max(sizes)
        with_parallelism = not args.no_parallelism
        results = [fanout.measure(work, n, with_parallelism=with_parallelism and n == parallelism_at) for n in sizes]
        return fanout.sections(results, mode)
    if name == "nodeimages":
        count = args.nodeimages or (nodeimages.QUICK_NODES if args.quick else nodeimages.FULL_NODES)
        jobs = args.restart_jobs if args.restart_jobs is not None else _default_restart_jobs(args.quick)
        return [nodeimages.section(work, count, mode, jobs)]
    if name == "idle":
        scale = idle.QUICK if args.quick else idle.FULL
        scale = dataclasses.replace(scale, jobs=args.idle_jobs or scale.jobs, nodes=args.idle_nodes or scale.nodes)
        scale = dataclasses.replace(scale, expiry_after=args.idle_expiry or scale.expiry_after)
        return [idle.section(work, scale, mode)]
    if name == "pulloverhead":
        shape = pulloverhead.QUICK if args.quick else pulloverhead.FULL
        return [pulloverhead.section(work, shape, mode)]
    raise ValueError(name)


def _default_restart_jobs(quick: bool) -> int:
    return nodeimages.QUICK_JOBS if quick else nodeimages.FULL_JOBS


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes (what CI runs)")
    parser.add_argument("--only", action="append", choices=BENCHMARKS, help="run only these (repeatable)")
    parser.add_argument("--runs", type=int, default=3, help="cluster start samples (full mode); default: %(default)s")
    parser.add_argument("--nodes", type=int, action="append", help="fan-out node counts (repeatable)")
    parser.add_argument("--nodeimages", type=int, help="node count of the NodeImage creation/restart benchmark")
    parser.add_argument("--no-parallelism", action="store_true", help="fan-out without the parallelism runs")
    parser.add_argument("--restart-jobs", type=int, help="jobs seeded for the restart (0: none)")
    parser.add_argument("--idle-jobs", type=int, help="jobs of the idle benchmark")
    parser.add_argument("--idle-nodes", type=int, help="nodes of the idle benchmark")
    parser.add_argument("--idle-expiry", type=float, help="seconds from the seed until the idle benchmark's event")
    parser.add_argument(
        "--output", type=Path, help=f"default: {RESULTS} (full), {QUICK_RESULTS} (--quick: keeps the full results)"
    )
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    args.output = args.output or (QUICK_RESULTS if args.quick else RESULTS)
    sections: list[Section] = []
    with tempfile.TemporaryDirectory(prefix="bench-", dir="/tmp") as work:
        for name in args.only or BENCHMARKS:
            print(f"== {name}", flush=True)
            produced = run(name, args, Path(work))
            for section in produced:
                print(section.render(), flush=True)
            sections += produced
            args.output.write_text(merge(args.output, sections, ORDER))
    print(f"results written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
