"""Client channels between our services, with retries and keepalive declared once.

Retries are the channel's job, not hand-written loops (principle 11, grpc `examples/python/retry`): the
service config below makes gRPC itself retry a call that failed with UNAVAILABLE (the server restarted, a
leader changed, a connection dropped), with exponential back-off and jitter, for every method. gRPC only
retries while no response has reached the application, so a retried call never delivers a reply twice; streams
that already produced messages fail and the caller re-opens them. Only UNAVAILABLE is retried by default: it
is the code that promises "nothing happened, try again". DEADLINE_EXCEEDED or ABORTED may mean the server did
act, and the caller must decide.

Keepalive: the client pings every 30 s *while a call is active*, so a long watch on a dead connection (a node
or pod gone without a FIN) fails in under a minute instead of hanging for TCP's hours. No pings are sent on an
idle channel (`permit_without_calls` stays off) so thousands of pullers cost the servers nothing when quiet;
`rpc.server` accepts pings at this rate.

Every channel is traced (`telemetry.instrumentation.trace_channel`): one CLIENT span per call, its context
sent along so the server's span joins the trace. Without an installed SDK the spans are no-ops.

`load_balancing="round_robin"` spreads calls over every address a DNS name returns (a headless Service in
front of the scheduler's replicas), instead of gRPC's default of sticking to the first.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeAlias

import grpc
from opentelemetry import trace

from services.shared.rpc.server import DEFAULT_MAX_MESSAGE_BYTES
from services.shared.telemetry import instrumentation

ClientInterceptor: TypeAlias = (
    grpc.UnaryUnaryClientInterceptor
    | grpc.UnaryStreamClientInterceptor
    | grpc.StreamUnaryClientInterceptor
    | grpc.StreamStreamClientInterceptor
)


@dataclass(frozen=True)
class RetryPolicy:
    """gRPC's declarative retry policy (gRFC A6); gRPC caps `max_attempts` at 5."""

    max_attempts: int = 5
    """The first attempt plus up to four retries."""
    initial_backoff_seconds: float = 0.2
    """Upper bound of the first random back-off; later ones grow by `backoff_multiplier`."""
    max_backoff_seconds: float = 5.0
    """No back-off is longer, however many attempts were made."""
    backoff_multiplier: float = 2.0
    retryable_status_codes: tuple[str, ...] = ("UNAVAILABLE",)
    """Status code names that are safe to retry; see the module docstring for why only UNAVAILABLE."""


@dataclass(frozen=True)
class KeepAlive:
    """Client keepalive pings while calls are active (see the module docstring)."""

    time_ms: int = 30_000
    timeout_ms: int = 10_000


def service_config(
    retry: RetryPolicy = RetryPolicy(),
    *,
    services: Sequence[str] = (),
    timeout_seconds: float | None = None,
    load_balancing: str | None = None,
) -> str:
    """The service-config JSON for a channel: `retry` (and an optional default deadline) for `services`.

    Args:
        retry: the retry policy.
        services: full service names ("prepull.v1.Credentials") the policy applies to; empty means every method.
        timeout_seconds: default deadline of calls that set none; None leaves calls without one.
        load_balancing: a gRPC load-balancing policy name ("round_robin"), or None for gRPC's default.
    """
    method: dict[str, object] = {
        "name": [{"service": name} for name in services] or [{}],
        "retryPolicy": {
            "maxAttempts": retry.max_attempts,
            "initialBackoff": f"{retry.initial_backoff_seconds}s",
            "maxBackoff": f"{retry.max_backoff_seconds}s",
            "backoffMultiplier": retry.backoff_multiplier,
            "retryableStatusCodes": list(retry.retryable_status_codes),
        },
    }
    if timeout_seconds is not None:
        method["timeout"] = f"{timeout_seconds}s"
    config: dict[str, object] = {"methodConfig": [method]}
    if load_balancing:
        config["loadBalancingConfig"] = [{load_balancing: {}}]
    return json.dumps(config)


def create_channel(
    target: str,
    *,
    credentials: grpc.ChannelCredentials | None = None,
    interceptors: Sequence[ClientInterceptor] = (),
    config: str | None = None,
    keepalive: KeepAlive = KeepAlive(),
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    tracer_provider: trace.TracerProvider | None = None,
) -> grpc.Channel:
    """A channel to `target` ("dns:///scheduler.prepull-system:9090", "127.0.0.1:9090", "unix:/x.sock").

    Args:
        target: a gRPC target name.
        credentials: TLS or local channel credentials; plaintext when None.
        interceptors: client interceptors (e.g. the bearer token), outermost first; tracing wraps them all.
        config: a `service_config()` JSON; the default retries UNAVAILABLE on every method.
        keepalive: ping settings while calls are active.
        max_message_bytes: limit on each message sent and received (the servers use the same default).
        tracer_provider: the provider for the channel's spans; None means the process-wide one.
    """
    options = [
        ("grpc.service_config", config or service_config()),
        ("grpc.enable_retries", 1),
        ("grpc.keepalive_time_ms", keepalive.time_ms),
        ("grpc.keepalive_timeout_ms", keepalive.timeout_ms),
        ("grpc.keepalive_permit_without_calls", 0),
        # Keep pinging during long quiet streams (the default stops after 2 pings without data).
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
    ]
    if credentials is None:
        channel = grpc.insecure_channel(target, options=options)
    else:
        channel = grpc.secure_channel(target, credentials, options=options)
    if interceptors:
        channel = grpc.intercept_channel(channel, *interceptors)
    return instrumentation.trace_channel(channel, tracer_provider)
