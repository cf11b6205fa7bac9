"""A local OTLP/gRPC trace receiver that appends every span it gets to a JSON-lines file.

The demo and the tests need to look at traces without running a tracing backend: the services export with
their ordinary OTLP exporter (`OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:<port>`), this receiver answers
`opentelemetry.proto.collector.trace.v1.TraceService/Export` on loopback, and `prepull trace` reads the file.

One span per line, a JSON object with these keys (ids are lowercase hex, times are Unix nanoseconds, attribute
values keep their JSON type; arrays stay arrays, bytes become hex)::

    trace_id, span_id, parent_span_id ("" for a root), trace_state, name, kind ("SERVER", "CLIENT", ...),
    service.name (from the resource), resource (all resource attributes), scope (instrumentation scope name),
    start_time_unix_nano, end_time_unix_nano, status {"code": "UNSET"|"OK"|"ERROR", "message"},
    attributes, events [{name, time_unix_nano, attributes}], links [{trace_id, span_id, trace_state, attributes}]

Nothing is redacted or dropped: the file is a faithful record of what the services sent, so a test that
searches it for a credential and finds none has proven that none was exported.

The file is only ever appended to, one whole batch per `write` under a lock, so concurrent exports never
interleave and a restarted receiver (same `--out`) keeps what an earlier one stored. Run it either in process
(`OtlpReceiver`, for tests) or as a child process the harness owns (`ManagedProcess` with
`python -m localcluster.otlpreceiver --port N --out FILE`; it stops cleanly on SIGTERM).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Iterable, Iterator, Sequence
from concurrent import futures
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

LOOPBACK = "127.0.0.1"
SERVICE_NAME = "service.name"
_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
"""The SDK's batch processor sends up to 512 spans per request; 64 MiB leaves room for very chatty spans."""

SpanRecord = dict[str, Any]


# --- protobuf → JSON ------------------------------------------------------------------------------------


def span_records(request: trace_service_pb2.ExportTraceServiceRequest) -> Iterator[SpanRecord]:
    """One JSON-ready record per span in an OTLP export request (see the module docstring for the keys)."""
    for resource_spans in request.resource_spans:
        resource = attribute_map(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                yield _span_record(span, resource=resource, scope=scope_spans.scope.name)


def _span_record(span: trace_pb2.Span, *, resource: dict[str, Any], scope: str) -> SpanRecord:
    return {
        "trace_id": span.trace_id.hex(),
        "span_id": span.span_id.hex(),
        "parent_span_id": span.parent_span_id.hex(),
        "trace_state": span.trace_state,
        "name": span.name,
        "kind": trace_pb2.Span.SpanKind.Name(span.kind).removeprefix("SPAN_KIND_"),
        SERVICE_NAME: resource.get(SERVICE_NAME, ""),
        "resource": resource,
        "scope": scope,
        "start_time_unix_nano": span.start_time_unix_nano,
        "end_time_unix_nano": span.end_time_unix_nano,
        "status": {
            "code": trace_pb2.Status.StatusCode.Name(span.status.code).removeprefix("STATUS_CODE_"),
            "message": span.status.message,
        },
        "attributes": attribute_map(span.attributes),
        "events": [
            {"name": e.name, "time_unix_nano": e.time_unix_nano, "attributes": attribute_map(e.attributes)}
            for e in span.events
        ],
        "links": [
            {
                "trace_id": link.trace_id.hex(),
                "span_id": link.span_id.hex(),
                "trace_state": link.trace_state,
                "attributes": attribute_map(link.attributes),
            }
            for link in span.links
        ],
    }


def attribute_map(attributes: Iterable[common_pb2.KeyValue]) -> dict[str, Any]:
    """OTLP key/value pairs as a plain dict of JSON values."""
    return {kv.key: any_value(kv.value) for kv in attributes}


def any_value(value: common_pb2.AnyValue) -> Any:
    """An OTLP `AnyValue` as a JSON value: scalars as themselves, arrays as lists, kvlists as dicts, bytes as hex."""
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [any_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return attribute_map(value.kvlist_value.values)
    if kind == "bytes_value":
        return value.bytes_value.hex()
    return None if kind is None else getattr(value, kind)


# --- the service ----------------------------------------------------------------------------------------


class SpanFile:
    """The JSON-lines file spans are appended to; one lock makes each batch one uninterrupted write."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def append(self, records: Iterable[SpanRecord]) -> int:
        """Append `records`, one line each, in a single write; return how many were written."""
        lines = [json.dumps(record, separators=(",", ":"), sort_keys=True) + "\n" for record in records]
        if lines:
            with self._lock, self.path.open("a", encoding="utf-8") as out:
                out.write("".join(lines))
        return len(lines)

    def read(self) -> list[SpanRecord]:
        """Every record stored so far (for tests); an absent file holds none."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in text.splitlines() if line.strip()]


class TraceServiceServicer(trace_service_pb2_grpc.TraceServiceServicer):
    """`TraceService/Export`: store the request's spans and answer that all were accepted."""

    def __init__(self, spans: SpanFile) -> None:
        self._spans = spans

    def Export(  # noqa: N802 (the gRPC method name)
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: grpc.ServicerContext
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        """Append every span of `request` to the file; a failed write is reported to the exporter as UNAVAILABLE."""
        try:
            self._spans.append(span_records(request))
        except OSError as exc:
            context.abort(grpc.StatusCode.UNAVAILABLE, f"cannot store spans: {exc.strerror}")
        return trace_service_pb2.ExportTraceServiceResponse()


class OtlpReceiver:
    """An OTLP/gRPC trace receiver on loopback, in this process; use as a context manager or start/stop."""

    def __init__(self, out: Path, *, port: int = 0) -> None:
        """Prepare a receiver storing spans in `out`; `port` 0 lets the kernel pick a free one at `start`."""
        self.spans = SpanFile(out)
        self.port = port
        self._server: grpc.Server | None = None

    @property
    def endpoint(self) -> str:
        """What to put in `OTEL_EXPORTER_OTLP_ENDPOINT` (plaintext gRPC on loopback)."""
        return f"http://{LOOPBACK}:{self.port}"

    def start(self) -> None:
        """Listen and serve; after this `port` is the bound port.

        Raises:
            RuntimeError: the port could not be bound.
        """
        if self._server is not None:
            return
        self.spans.path.parent.mkdir(parents=True, exist_ok=True)
        options = [("grpc.max_receive_message_length", _MAX_MESSAGE_BYTES), ("grpc.so_reuseport", 0)]
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), options=options)
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(  # type: ignore[no-untyped-call]
            TraceServiceServicer(self.spans), server
        )
        bound = server.add_insecure_port(f"{LOOPBACK}:{self.port}")
        if not bound:
            raise RuntimeError(f"cannot listen on {LOOPBACK}:{self.port}")
        server.start()
        self.port = bound
        self._server = server

    def stop(self, grace: float = 2.0) -> None:
        """Finish the exports in flight (up to `grace` seconds) and close the port; idempotent."""
        if self._server is not None:
            self._server.stop(grace).wait()
            self._server = None

    def __enter__(self) -> OtlpReceiver:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()


# --- the child-process entry point ----------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m localcluster.otlpreceiver --port N --out FILE`: serve until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(
        prog="python -m localcluster.otlpreceiver", description="Local OTLP/gRPC trace receiver writing JSON lines."
    )
    parser.add_argument("--port", type=int, required=True, help="loopback port to listen on (0: any free port)")
    parser.add_argument("--out", type=Path, required=True, help="JSON-lines file spans are appended to")
    args = parser.parse_args(argv)
    stopping = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    receiver = OtlpReceiver(args.out, port=args.port)
    receiver.start()
    print(f"otlpreceiver listening on {receiver.endpoint}, appending spans to {args.out}", flush=True)
    try:
        while not stopping.wait(timeout=1.0):
            pass
    finally:
        receiver.stop()
    print("otlpreceiver stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
