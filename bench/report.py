"""docs/benchmarks.md: a header (machine, date, commit) and one `## ` section per benchmark.

Sections are merged into the existing file by heading, so `python -m bench --only X` refreshes X and keeps the
others; every section states when, at which commit and in which mode it was measured.
"""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "docs" / "benchmarks.md"
TITLE = "# Benchmarks"
PREAMBLE = (
    "Written by `make bench` (`python -m bench`; `--only X` refreshes one section). `make bench-quick` (small sizes,\n"
    "what CI runs so the harness cannot rot) writes its results to a temporary file, not here.\n"
    "Targets are reported next to measurements, never asserted: a benchmark informs, a test decides."
)


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
    """The checkout's short commit (uncommitted changes are not marked)."""
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=False
    )
    return head.stdout.strip() or "unknown"


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


@dataclass
class Table:
    """A markdown table; cells are already formatted text."""

    columns: Sequence[str]
    rows: list[Sequence[str]] = field(default_factory=list)

    def add(self, *cells: object) -> None:
        self.rows.append([str(cell) for cell in cells])

    def render(self) -> str:
        lines = ["| " + " | ".join(self.columns) + " |", "|" + "---|" * len(self.columns)]
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        return "\n".join(lines)


@dataclass
class Section:
    """One benchmark's results: a `## title`, when/where it ran, then free markdown blocks (tables, notes)."""

    title: str
    mode: str
    blocks: list[str] = field(default_factory=list)

    def add(self, block: str | Table) -> None:
        self.blocks.append(block.render() if isinstance(block, Table) else block)

    def render(self) -> str:
        stamp = f"Measured {now()}, commit `{commit()}`, mode `{self.mode}`."
        return "\n\n".join([f"## {self.title}", stamp, *self.blocks]) + "\n"


def merge(path: Path, sections: Sequence[Section], order: Sequence[str]) -> str:
    """The file's text with `sections` replacing those of the same title; sections follow `order`."""
    existing = _split(path.read_text()) if path.exists() else {}
    existing.update({section.title: section.render() for section in sections})
    known = [title for title in order if title in existing]
    others = [title for title in existing if title not in order]
    header = f"{TITLE}\n\nMachine: {machine()}.\n\n{PREAMBLE}\n"
    return "\n".join([header, *(existing[title] for title in [*known, *others])])


def _split(text: str) -> dict[str, str]:
    """`## ` sections of a previous results file, by title (the header before them is rebuilt, not kept)."""
    sections: dict[str, str] = {}
    title: str | None = None
    lines: list[str] = []
    for line in text.splitlines():
        if line.startswith("## "):
            if title is not None:
                sections[title] = "\n".join(lines).rstrip() + "\n"
            title, lines = line[3:].strip(), [line]
        elif title is not None:
            lines.append(line)
    if title is not None:
        sections[title] = "\n".join(lines).rstrip() + "\n"
    return sections
