"""The spans of one trace, as `prepull trace` draws them, read from the local receiver's JSON-lines file.

The file is written by `localcluster.otlpreceiver` (one JSON object per span, keys documented there): a data
format, not an import, so the CLI does not depend on the test harness. Only the fields the waterfall needs are
kept. A span stored twice (an exporter retried a batch whose answer it never saw) counts once, and a last line
without its newline (the receiver is writing it right now) is left for the next read.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TRACE_ID_HEX_LENGTH = 32
"""A W3C trace id is 16 bytes, written as 32 lowercase hex digits."""


@dataclass(frozen=True)
class Span:
    """One finished span: where it sits in the trace, when it ran, and what it says about the work.

    Attributes:
        trace_id: 32 hex digits.
        span_id: 16 hex digits.
        parent_span_id: the parent's id; "" for a root (the parent may also be absent from the data).
        name: the operation, e.g. `reconcile` or `/runtime.v1.ImageService/PullImage`.
        service: the exporting process's `service.name`.
        start_ns: start, Unix nanoseconds.
        end_ns: end, Unix nanoseconds.
        error: the span's status is ERROR.
        status_message: the status description ("" when none).
        attributes: the span's attributes, JSON values.
    """

    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    service: str
    start_ns: int
    end_ns: int
    error: bool = False
    status_message: str = ""
    attributes: Mapping[str, Any] = field(default_factory=dict)

    @property
    def duration_ns(self) -> int:
        """How long the span ran (never negative, even for a span with a skewed clock)."""
        return max(self.end_ns - self.start_ns, 0)


def from_record(record: Mapping[str, Any]) -> Span:
    """A `Span` from one receiver record.

    Raises:
        KeyError, TypeError, ValueError: the record lacks a field or has one of the wrong type.
    """
    status = record.get("status") or {}
    return Span(
        trace_id=str(record["trace_id"]),
        span_id=str(record["span_id"]),
        parent_span_id=str(record.get("parent_span_id") or ""),
        name=str(record["name"]),
        service=str(record.get("service.name") or ""),
        start_ns=int(record["start_time_unix_nano"]),
        end_ns=int(record["end_time_unix_nano"]),
        error=status.get("code") == "ERROR",
        status_message=str(status.get("message") or ""),
        attributes=dict(record.get("attributes") or {}),
    )


def normalize_trace_id(value: str) -> str:
    """`value` as 32 lowercase hex digits.

    Raises:
        ValueError: it is not a 16-byte hex trace id, or it is the all-zero (invalid) id.
    """
    trace_id = value.strip().lower()
    if len(trace_id) != TRACE_ID_HEX_LENGTH or any(c not in "0123456789abcdef" for c in trace_id):
        raise ValueError(f"{value!r} is not a trace id (32 hex digits)")
    if int(trace_id, 16) == 0:
        raise ValueError("the all-zero trace id is invalid")
    return trace_id


def load_trace(path: Path, trace_id: str) -> list[Span]:
    """The spans of trace `trace_id` stored in the receiver file at `path`, each once, in file order.

    Raises:
        OSError: the file cannot be read (FileNotFoundError when there is none yet).
        ValueError: a complete line is not a valid span record (the file is not a receiver file).
    """
    with path.open(encoding="utf-8") as lines:
        return select_trace(_records(lines, source=path), trace_id)


def select_trace(records: Iterable[Mapping[str, Any]], trace_id: str) -> list[Span]:
    """The spans of `trace_id` among `records`, each span id once (the first copy wins)."""
    wanted = normalize_trace_id(trace_id)
    seen: set[str] = set()
    spans: list[Span] = []
    for record in records:
        if record.get("trace_id") != wanted or record.get("span_id") in seen:
            continue
        try:
            span = from_record(record)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed span record {record.get('span_id')!r}: {exc!r}") from exc
        seen.add(span.span_id)
        spans.append(span)
    return spans


def _records(lines: Iterable[str], *, source: Path) -> Iterator[Mapping[str, Any]]:
    for number, line in enumerate(lines, start=1):
        if not line.endswith("\n"):
            return  # being written right now: the next read sees it whole
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{source}:{number}: not a JSON span record ({exc.msg})") from exc
        if not isinstance(record, dict):
            raise ValueError(f"{source}:{number}: not a JSON span record (a {type(record).__name__})")
        yield record
