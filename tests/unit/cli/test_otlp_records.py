"""The receiver's file format: what `localcluster.otlpreceiver` writes is what `prepull trace` reads."""

from __future__ import annotations

import json
from pathlib import Path

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from localcluster import otlpreceiver
from services.cli import spans

TRACE = bytes.fromhex("4bf92f3577b34da6a3ce929d0e0e4736")


def kv(key: str, value: common_pb2.AnyValue) -> common_pb2.KeyValue:
    return common_pb2.KeyValue(key=key, value=value)


def a_request() -> trace_service_pb2.ExportTraceServiceRequest:
    values = [
        kv("s", common_pb2.AnyValue(string_value="text")),
        kv("i", common_pb2.AnyValue(int_value=7)),
        kv("d", common_pb2.AnyValue(double_value=1.5)),
        kv("b", common_pb2.AnyValue(bool_value=False)),
        kv("raw", common_pb2.AnyValue(bytes_value=b"\x00\xff")),
        kv("empty", common_pb2.AnyValue()),
        kv(
            "list",
            common_pb2.AnyValue(
                array_value=common_pb2.ArrayValue(
                    values=[common_pb2.AnyValue(string_value="a"), common_pb2.AnyValue(int_value=2)]
                )
            ),
        ),
        kv(
            "map",
            common_pb2.AnyValue(
                kvlist_value=common_pb2.KeyValueList(values=[kv("k", common_pb2.AnyValue(string_value="v"))])
            ),
        ),
    ]
    span = trace_pb2.Span(
        trace_id=TRACE,
        span_id=bytes.fromhex("00f067aa0ba902b7"),
        parent_span_id=bytes.fromhex("b7ad6b7169203331"),
        name="PullImage",
        kind=trace_pb2.Span.SPAN_KIND_CLIENT,
        start_time_unix_nano=1_000,
        end_time_unix_nano=5_000,
        attributes=values,
        status=trace_pb2.Status(code=trace_pb2.Status.STATUS_CODE_ERROR, message="boom"),
        events=[trace_pb2.Span.Event(name="retry", time_unix_nano=2_000, attributes=values[:1])],
        links=[trace_pb2.Span.Link(trace_id=TRACE, span_id=bytes.fromhex("1111111111111111"), attributes=values[1:2])],
    )
    resource = resource_pb2.Resource(attributes=[kv("service.name", common_pb2.AnyValue(string_value="puller"))])
    return trace_service_pb2.ExportTraceServiceRequest(
        resource_spans=[
            trace_pb2.ResourceSpans(
                resource=resource,
                scope_spans=[trace_pb2.ScopeSpans(scope=common_pb2.InstrumentationScope(name="cri"), spans=[span])],
            )
        ]
    )


def test_a_span_becomes_one_json_record_with_every_field() -> None:
    (record,) = otlpreceiver.span_records(a_request())

    assert record == {
        "trace_id": TRACE.hex(),
        "span_id": "00f067aa0ba902b7",
        "parent_span_id": "b7ad6b7169203331",
        "trace_state": "",
        "name": "PullImage",
        "kind": "CLIENT",
        "service.name": "puller",
        "resource": {"service.name": "puller"},
        "scope": "cri",
        "start_time_unix_nano": 1_000,
        "end_time_unix_nano": 5_000,
        "status": {"code": "ERROR", "message": "boom"},
        "attributes": {
            "s": "text",
            "i": 7,
            "d": 1.5,
            "b": False,
            "raw": "00ff",
            "empty": None,
            "list": ["a", 2],
            "map": {"k": "v"},
        },
        "events": [{"name": "retry", "time_unix_nano": 2_000, "attributes": {"s": "text"}}],
        "links": [{"trace_id": TRACE.hex(), "span_id": "1" * 16, "trace_state": "", "attributes": {"i": 7}}],
    }


def test_what_the_receiver_appends_the_cli_reads(tmp_path: Path) -> None:
    span_file = otlpreceiver.SpanFile(tmp_path / "spans.jsonl")

    assert span_file.append(otlpreceiver.span_records(a_request())) == 1
    assert span_file.append(otlpreceiver.span_records(a_request())) == 1

    (span,) = spans.load_trace(span_file.path, TRACE.hex())
    assert (span.name, span.service, span.parent_span_id, span.duration_ns) == (
        "PullImage",
        "puller",
        "b7ad6b7169203331",
        4_000,
    )
    assert span.error and span.status_message == "boom"
    assert len(span_file.read()) == 2, "appending keeps what was there"
    assert all(json.loads(line) for line in span_file.path.read_text().splitlines())
