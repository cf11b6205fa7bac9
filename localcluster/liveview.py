"""The demo's live view: jobs and per-node pulls as a compact table, redrawn in place about twice a second.

On a terminal the table is redrawn with plain ANSI escapes (cursor up, clear to end of screen), no curses. When
stdout is not a terminal (CI logs, a pipe) redrawing would only repeat the table, so each row is printed as a
line when it changes, prefixed with the seconds since the view started: a log a reader can follow.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

MIB = 1024 * 1024
CURSOR_UP_AND_CLEAR = "\x1b[{lines}F\x1b[J"


@dataclass(frozen=True)
class Row:
    """One line of the table; `key` identifies it across refreshes (for line-per-change output)."""

    key: str
    text: str


def job_rows(image_pull_jobs: Iterable[Mapping[str, Any]], list_jobs: Iterable[Mapping[str, Any]]) -> list[Row]:
    """A header and one row per job: counters from its status, and whether it completed."""
    header = f"{'JOB':38} {'DESIRED':>7} {'ACTIVE':>6} {'SUCCEEDED':>9} {'FAILED':>6}  STATE"
    rows = [Row("jobs", header)]
    for kind, jobs in (("ipj", image_pull_jobs), ("ilpj", list_jobs)):
        for job in sorted(jobs, key=lambda j: str(j["metadata"]["name"])):
            status = job.get("status") or {}
            failed = (
                status.get("failed", 0) if kind == "ipj" else status.get("completed", 0) - status.get("succeeded", 0)
            )
            state = "complete" if status.get("completionTime") else "running"
            name = f"{kind}/{job['metadata']['name']}"
            text = (
                f"{name:38} {status.get('desired', '-'):>7} {status.get('active', 0):>6} "
                f"{status.get('succeeded', 0):>9} {failed:>6}  {state}"
            )
            rows.append(Row(name, text))
    return rows


def _failed_count(kind: str, status: Mapping[str, Any]) -> int:
    """Failed nodes of a job; for a list job, failed children (completed without succeeding)."""
    if kind == "ipj":
        return int(status.get("failed", 0))
    return int(status.get("completed", 0)) - int(status.get("succeeded", 0))


def node_rows(node_images: Iterable[Mapping[str, Any]], *, shown: Sequence[str]) -> list[Row]:
    """A header and one row per (node, image tag) whose image name contains one of `shown`."""
    rows = [Row("nodes", f"{'NODE':10} {'IMAGE':44} {'PHASE':10} PROGRESS")]
    for node_image in sorted(node_images, key=lambda n: str(n["metadata"]["name"])):
        node = str(node_image["metadata"]["name"])
        statuses = (node_image.get("status") or {}).get("imageStatuses") or {}
        requested = (node_image.get("spec") or {}).get("images") or {}
        for image in sorted(set(requested) | set(statuses)):
            if not any(part in image for part in shown):
                continue
            tags = _tag_states(requested.get(image) or {}, statuses.get(image) or {})
            for tag, (phase, progress) in sorted(tags.items()):
                label = f"{_without_registry(image)}:{tag}"
                rows.append(Row(f"{node}/{image}:{tag}", f"{node:10} {label:44} {phase:10} {progress}"))
    return rows


def _tag_states(spec: Mapping[str, Any], status: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    """Phase and progress text per tag: requested tags without a status yet are `Waiting`."""
    states = {str(tag["tag"]): ("Waiting", "") for tag in spec.get("tags") or []}
    for tag in status.get("tags") or []:
        states[str(tag["tag"])] = (str(tag.get("phase", "")), progress_text(tag))
    return states


def progress_text(tag_status: Mapping[str, Any]) -> str:
    """`12.0/48.0 MiB` when the puller wrote byte counts, else upstream's percentage, else nothing."""
    pulled, total = tag_status.get("pulledBytes"), tag_status.get("totalBytes")
    if isinstance(total, int) and total > 0:
        return f"{(pulled or 0) / MIB:.1f}/{total / MIB:.1f} MiB"
    if tag_status.get("progress"):
        return f"{tag_status['progress']}%"
    return ""


def _without_registry(image: str) -> str:
    """`demo/app` for `127.0.0.1:5000/demo/app`: the table is narrow, and the registry is the same for all."""
    first, _, rest = image.partition("/")
    return rest if rest and ("." in first or ":" in first or first == "localhost") else image


@dataclass
class LiveView:
    """Shows successive tables on `out`: redrawn in place on a terminal, changed lines only otherwise."""

    out: TextIO = field(default_factory=lambda: sys.stdout)
    interactive: bool | None = None
    _drawn_lines: int = field(default=0, init=False)
    _last: dict[str, str] = field(default_factory=dict, init=False)
    _started: float = field(default_factory=time.monotonic, init=False)

    def __post_init__(self) -> None:
        if self.interactive is None:
            self.interactive = self.out.isatty()

    def show(self, rows: Sequence[Row], footer: str = "") -> None:
        """Show the current table (and a one-line footer, e.g. what is still awaited)."""
        if self.interactive:
            self._redraw([row.text for row in rows] + ([footer] if footer else []))
        else:
            self._print_changes([*rows, Row("footer", footer)] if footer else rows)
        self.out.flush()

    def _redraw(self, lines: list[str]) -> None:
        if self._drawn_lines:
            self.out.write(CURSOR_UP_AND_CLEAR.format(lines=self._drawn_lines))
        self.out.write("".join(line + "\n" for line in lines))
        self._drawn_lines = len(lines)

    def _print_changes(self, rows: Sequence[Row]) -> None:
        elapsed = time.monotonic() - self._started
        for row in rows:
            if self._last.get(row.key) != row.text:
                self._last[row.key] = row.text
                self.out.write(f"[{elapsed:6.1f}s] {row.text}\n")
