"""RPC spans for our gRPC servers and channels, from `opentelemetry-instrumentation-grpc`.

We apply the instrumentation explicitly (`rpc.server.create_server(interceptors=[server_interceptor(), ...])`
on the server; `rpc.channels.create_channel` traces its channels itself through `trace_channel`) instead of
calling the instrumentors' `instrument()`, which patches `grpc.server` and `grpc.insecure_channel` for the
whole process: explicit is easier to follow, and tests can hand a test provider to one server and one channel
without touching process-wide state.

The client side is not a `grpc.*ClientInterceptor`: the package wraps channels with its own interceptor
interface (`grpcext`), so `trace_channel` returns a wrapped channel rather than an interceptor.

Health checks and reflection are not traced: the kubelet probes every few seconds, and a trace per probe
would bury the traces anyone wants to see. With tracing off (no SDK installed) the spans are no-op and the
cost is a few function calls per RPC.
"""

from __future__ import annotations

import grpc
from opentelemetry import trace
from opentelemetry.instrumentation.grpc import client_interceptor as otel_client_interceptor
from opentelemetry.instrumentation.grpc import filters
from opentelemetry.instrumentation.grpc import server_interceptor as otel_server_interceptor
from opentelemetry.instrumentation.grpc.grpcext import intercept_channel

_UNTRACED = filters.negate(
    filters.any_of(filters.service_prefix("grpc.health.v1."), filters.service_prefix("grpc.reflection."))
)


def server_interceptor(tracer_provider: trace.TracerProvider | None = None) -> grpc.ServerInterceptor:
    """A server interceptor making one SERVER span per call, continuing the caller's trace from its metadata.

    Args:
        tracer_provider: the provider to use; None means the process-wide one (what services want).
    """
    return otel_server_interceptor(tracer_provider=tracer_provider, filter_=_UNTRACED)  # type: ignore[no-untyped-call]


def trace_channel(channel: grpc.Channel, tracer_provider: trace.TracerProvider | None = None) -> grpc.Channel:
    """`channel` with one CLIENT span per call, whose context is sent in the call's metadata.

    Args:
        channel: the channel to wrap (it may already carry our own interceptors).
        tracer_provider: the provider to use; None means the process-wide one.
    """
    interceptor = otel_client_interceptor(tracer_provider=tracer_provider, filter_=_UNTRACED)  # type: ignore[no-untyped-call]
    return intercept_channel(channel, interceptor)  # type: ignore[no-untyped-call]
