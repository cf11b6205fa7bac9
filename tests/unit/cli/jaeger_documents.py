"""A Jaeger `/api/traces/<id>` answer for the job trace the CLI tests use, in the shape Jaeger's query API has.

The shape (ids as hex, times in microseconds, tags as key/type/value, CHILD_OF references, service names on
processes, the OpenTelemetry status as `otel.status_*` tags, arrays as JSON strings) is what Jaeger's
OTLP translation produces; only the values are made up.
"""

from __future__ import annotations

from typing import Any

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
START_US = 1_700_000_000_000_000


def tag(key: str, value: Any) -> dict[str, Any]:
    kind = {bool: "bool", int: "int64", float: "float64"}.get(type(value), "string")
    return {"key": key, "type": kind, "value": value}


def child_of(span_id: str, trace_id: str = TRACE_ID) -> list[dict[str, str]]:
    return [{"refType": "CHILD_OF", "traceID": trace_id, "spanID": span_id}]


def a_jaeger_trace() -> dict[str, Any]:
    """reconcile (scheduler) → pull on node-a (puller, failed first attempt) → PullImage (error)."""
    spans = [
        {
            "traceID": TRACE_ID,
            "spanID": "00f067aa0ba902b7",
            "operationName": "reconcile",
            "references": [],
            "startTime": START_US,
            "duration": 100_000,
            "tags": [tag("span.kind", "internal")],
            "logs": [],
            "processID": "p1",
            "warnings": None,
            "flags": 1,
        },
        {
            "traceID": TRACE_ID,
            "spanID": "b7ad6b7169203331",
            "operationName": "pull",
            "references": child_of("00f067aa0ba902b7"),
            "startTime": START_US + 20_000,
            "duration": 60_000,
            "tags": [
                tag("k8s.node.name", "node-a"),
                tag("container.image.name", "docker.io/library/nginx"),
                tag("container.image.tags", '["1.25"]'),
                tag("prepull.pull.attempt", 1),
                tag("otel.status_code", "ERROR"),
                tag("error", True),
            ],
            "logs": [],
            "processID": "p2",
            "warnings": None,
            "flags": 1,
        },
        {
            "traceID": TRACE_ID,
            "spanID": "3331b7ad6b716920",
            "operationName": "PullImage",
            "references": [
                *child_of("b7ad6b7169203331"),
                {"refType": "FOLLOWS_FROM", "traceID": "4bf92f3577b34da6a3ce929d0e0e4736", "spanID": "1" * 16},
            ],
            "startTime": START_US + 25_000,
            "duration": 50_000,
            "tags": [tag("otel.status_code", "ERROR"), tag("otel.status_description", "500 from registry")],
            "logs": [],
            "processID": "p2",
            "warnings": None,
            "flags": 1,
        },
    ]
    processes = {
        "p1": {"serviceName": "prepull-scheduler", "tags": []},
        "p2": {"serviceName": "prepull-puller", "tags": [tag("host.name", "node-a")]},
    }
    return {
        "data": [{"traceID": TRACE_ID, "spans": spans, "processes": processes, "warnings": None}],
        "total": 0,
        "limit": 0,
        "offset": 0,
        "errors": None,
    }
