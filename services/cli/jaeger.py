"""Reading a trace from Jaeger's query service, for clusters that run `deploy/observability/`.

On a real cluster the spans go to an OpenTelemetry Collector and on to Jaeger, not to a local file. Jaeger's
query service answers `GET /api/traces/<trace id>` (the HTTP JSON API its own UI uses) with
`{"data": [{"traceID", "spans": [...], "processes": {...}}]}`; `prepull trace --jaeger-url URL` reads that and
draws the same waterfall as from the local receiver's file.

What the OTLP → Jaeger translation changes, and how it is undone here:

- times are microseconds (`startTime`, `duration`), made nanoseconds again;
- the parent is the span's `CHILD_OF` reference within the trace (OpenTelemetry links become `FOLLOWS_FROM`);
- `service.name` moves to the span's process (`processes[processID].serviceName`);
- the status becomes the tags `otel.status_code` / `otel.status_description`, and array attributes
  (`container.image.tags`) become JSON strings, which are decoded again;
- ids lose their leading zeros in some versions; they are padded back to full width.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

from services.cli.spans import Span, normalize_trace_id

HTTP_NOT_FOUND = 404
DEFAULT_TIMEOUT_SECONDS = 10.0
_STATUS_CODE = "otel.status_code"
_STATUS_DESCRIPTION = "otel.status_description"


def load_trace(base_url: str, trace_id: str, *, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> list[Span]:
    """The spans of `trace_id` from the Jaeger query service at `base_url` (e.g. `http://localhost:16686`).

    Returns:
        The trace's spans; empty when Jaeger does not know the trace (yet).

    Raises:
        ValueError: `base_url` is not an http(s) URL, or the answer is not Jaeger's trace document.
        OSError: Jaeger cannot be reached or answered with an error other than "not found".
    """
    wanted = normalize_trace_id(trace_id)
    parsed = urllib.parse.urlsplit(base_url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError(f"{base_url!r} is not an http(s) URL of Jaeger's query service")
    url = f"{base_url.rstrip('/')}/api/traces/{wanted}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            document = json.load(response)
    except urllib.error.HTTPError as exc:
        if exc.code == HTTP_NOT_FOUND:
            return []
        raise
    except json.JSONDecodeError as exc:
        raise ValueError(f"{url} did not answer with JSON ({exc.msg})") from exc
    return spans_from_document(document, wanted)


def spans_from_document(document: Any, trace_id: str) -> list[Span]:
    """The spans of `trace_id` in a Jaeger `/api/traces` answer.

    Raises:
        ValueError: `document` does not have the shape of Jaeger's answer.
    """
    wanted = normalize_trace_id(trace_id)
    if not isinstance(document, dict) or not isinstance(document.get("data"), list):
        raise ValueError("not a Jaeger trace document (no 'data' list)")
    spans: list[Span] = []
    try:
        for trace in document["data"]:
            processes = trace.get("processes") or {}
            spans.extend(
                _span(raw, processes) for raw in trace.get("spans") or () if _full_id(raw["traceID"], 32) == wanted
            )
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise ValueError(f"malformed Jaeger trace document: {exc!r}") from exc
    return spans


def _span(raw: Mapping[str, Any], processes: Mapping[str, Any]) -> Span:
    trace_id = _full_id(raw["traceID"], 32)
    tags = {str(tag["key"]): _tag_value(tag) for tag in raw.get("tags") or ()}
    status_code = str(tags.pop(_STATUS_CODE, ""))
    status_message = str(tags.pop(_STATUS_DESCRIPTION, ""))
    start_ns = int(raw["startTime"]) * 1_000
    process = processes.get(raw.get("processID", "")) or {}
    return Span(
        trace_id=trace_id,
        span_id=_full_id(raw["spanID"], 16),
        parent_span_id=_parent(raw, trace_id),
        name=str(raw["operationName"]),
        service=str(process.get("serviceName") or ""),
        start_ns=start_ns,
        end_ns=start_ns + int(raw.get("duration") or 0) * 1_000,
        error=status_code == "ERROR",
        status_message=status_message,
        attributes=tags,
    )


def _parent(raw: Mapping[str, Any], trace_id: str) -> str:
    for reference in raw.get("references") or ():
        if reference.get("refType") == "CHILD_OF" and _full_id(reference["traceID"], 32) == trace_id:
            return _full_id(reference["spanID"], 16)
    return ""


def _tag_value(tag: Mapping[str, Any]) -> Any:
    """A tag's value; JSON arrays that the translation turned into strings become lists again."""
    value = tag.get("value")
    if isinstance(value, str) and value.startswith("[") and value.endswith("]"):
        try:
            decoded = json.loads(value)
        except json.JSONDecodeError:
            return value
        return decoded if isinstance(decoded, list) else value
    return value


def _full_id(value: str, digits: int) -> str:
    return str(value).lower().rjust(digits, "0")
