"""Carrying trace context across the hops OpenTelemetry's instrumentation does not see.

gRPC calls propagate context by themselves (the instrumentation interceptors inject and extract the
`traceparent` metadata). The API server is a different kind of hop: the scheduler writes a job annotation or
a NodeImage tag entry, and the puller acts on it seconds later in another process (design §4). There the
context travels as a W3C `traceparent` string (`00-<trace id>-<span id>-<flags>`) stored in the object, and
the puller makes its task span a child of (or a link to) that context.

The string helpers use the W3C Trace Context format directly, whatever `OTEL_PROPAGATORS` says, because the
stored string is a data format other tools (`prepull trace`, kubectl users) read. The metadata helpers use the
globally configured propagator, like the instrumentation does, so a deployment that adds baggage gets it
through our hand-made calls too.
"""

from __future__ import annotations

from collections.abc import Iterable

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

TRACEPARENT = "traceparent"
_W3C = TraceContextTextMapPropagator()


def traceparent(context: Context | None = None) -> str | None:
    """The `traceparent` of the current span (or of `context`), or None when there is no valid, sampled span.

    With tracing off there is never a valid span, so nothing is written to objects at all.
    """
    carrier: dict[str, str] = {}
    _W3C.inject(carrier, context=context)
    return carrier.get(TRACEPARENT)


def context_from_traceparent(value: str | None) -> Context:
    """A context whose remote parent is the span `value` names; an empty context when it is absent or invalid.

    Use it as `tracer.start_as_current_span(name, context=...)` to continue the trace, or take
    `span_context_from_traceparent` for a link. Invalid strings are ignored, as the W3C spec requires.
    """
    return _W3C.extract({TRACEPARENT: value} if value else {})


def span_context_from_traceparent(value: str | None) -> trace.SpanContext | None:
    """The remote span context `value` names, for `trace.Link`; None when absent or invalid."""
    span_context = trace.get_current_span(context_from_traceparent(value)).get_span_context()
    return span_context if span_context.is_valid else None


def inject_metadata(metadata: Iterable[tuple[str, str]] = (), context: Context | None = None) -> list[tuple[str, str]]:
    """`metadata` plus the propagation headers of the current (or given) context, for a hand-made gRPC call."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=context)
    return [*metadata, *carrier.items()]


def extract_metadata(metadata: Iterable[tuple[str, str | bytes]] | None) -> Context:
    """The context propagated in gRPC metadata (binary `-bin` entries are skipped; they carry no context)."""
    carrier = {key: value for key, value in metadata or () if isinstance(value, str)}
    return propagate.extract(carrier)
