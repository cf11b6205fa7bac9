"""gRPC client and server interceptors that make RPC spans, from `opentelemetry-instrumentation-grpc`.

We pass the interceptors explicitly (`rpc.server.create_server(interceptors=[server_interceptor(), ...])`,
`rpc.channels.create_channel(interceptors=[client_interceptor(), ...])`) instead of calling the instrumentor's
`instrument()`, which patches `grpc.server` and `grpc.insecure_channel` for the whole process: explicit is
easier to read, and tests can hand a test provider to one server without touching globals.

Health checks and reflection are not traced: the kubelet probes every few seconds, and a trace per probe
would bury the traces anyone wants to see.

With tracing off (no provider installed), the interceptors get no-op tracers, and their cost is a few
function calls per RPC.
"""

from __future__ import annotations

import grpc
from opentelemetry import trace
from opentelemetry.instrumentation.grpc import client_interceptor as otel_client_interceptor
from opentelemetry.instrumentation.grpc import filters
from opentelemetry.instrumentation.grpc import server_interceptor as otel_server_interceptor

_UNTRACED = filters.negate(
    filters.any_of(filters.service_prefix("grpc.health.v1."), filters.service_prefix("grpc.reflection."))
)


def server_interceptor(tracer_provider: trace.TracerProvider | None = None) -> grpc.ServerInterceptor:
    """A server interceptor making one SERVER span per call, continuing the caller's trace.

    Args:
        tracer_provider: the provider to use; None means the global one (what services want).
    """
    return otel_server_interceptor(tracer_provider=tracer_provider, filter_=_UNTRACED)  # type: ignore[no-untyped-call]


def client_interceptor(tracer_provider: trace.TracerProvider | None = None) -> grpc.UnaryUnaryClientInterceptor:
    """A client interceptor making one CLIENT span per call and sending its context in the metadata."""
    return otel_client_interceptor(tracer_provider=tracer_provider, filter_=_UNTRACED)  # type: ignore[no-untyped-call]
