"""Span builders for the CLI tests: a trace reads as a few short calls instead of a wall of literals."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from services.cli.spans import Span

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
MS = 1_000_000


def span_id(number: int) -> str:
    """A readable span id: 1 → 0000000000000001."""
    return f"{number:016x}"


def a_span(
    number: int,
    name: str,
    *,
    parent: int | None = None,
    service: str = "puller",
    start_ms: int = 0,
    end_ms: int = 1,
    node: str | None = None,
    error: bool = False,
    status_message: str = "",
    trace_id: str = TRACE_ID,
    attrs: Mapping[str, Any] | None = None,
) -> Span:
    """A span numbered `number` (its id), child of span `parent`, running from `start_ms` to `end_ms`."""
    attributes = dict(attrs or {})
    if node is not None:
        attributes["k8s.node.name"] = node
    return Span(
        trace_id=trace_id,
        span_id=span_id(number),
        parent_span_id=span_id(parent) if parent is not None else "",
        name=name,
        service=service,
        start_ns=start_ms * MS,
        end_ns=end_ms * MS,
        error=error,
        status_message=status_message,
        attributes=attributes,
    )


def a_record(span: Span) -> dict[str, Any]:
    """`span` as the local OTLP receiver stores it (the keys `localcluster.otlpreceiver` documents)."""
    return {
        "trace_id": span.trace_id,
        "span_id": span.span_id,
        "parent_span_id": span.parent_span_id,
        "trace_state": "",
        "name": span.name,
        "kind": "INTERNAL",
        "service.name": span.service,
        "resource": {"service.name": span.service},
        "scope": "tests",
        "start_time_unix_nano": span.start_ns,
        "end_time_unix_nano": span.end_ns,
        "status": {"code": "ERROR" if span.error else "UNSET", "message": span.status_message},
        "attributes": dict(span.attributes),
        "events": [],
        "links": [],
    }
