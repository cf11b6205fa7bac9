"""Building, running and stopping a service's gRPC server, the same way in every service.

`create_server` makes a synchronous `grpc.server` on a thread pool (principle 11, the grpc `errors/server.py`
factory): it registers the service's servicers, the stock health service (`rpc.health.Health`) and server
reflection (so `grpcurl` and `grpcurl describe` work without proto files), binds the address and returns the
server with the bound port, which is how tests use port 0. The server is returned *not started*, so the caller
decides when to accept calls (after caches are warm, say).

Interceptors run in the order given, the first outermost. Put tracing first (so a refused call is still a
span), then authentication, then error mapping (`rpc.status.StatusInterceptor`), so it sees the servicer's
exceptions before anything else does. Inside all of them, on every server, `create_server` adds
`rpc.decoding.MalformedRequestInterceptor`: request bytes that do not decode are refused INVALID_ARGUMENT after
authentication, with a debug line instead of grpc's INTERNAL and traceback.

Limits: messages are capped at 4 MiB each way (gRPC's default receive limit, made explicit and applied to
sending too, so a server never builds a reply its clients would refuse). Keepalive is set to find dead peers on
long-lived streams (watches) and to tolerate the client pings that `rpc.channels` sends. `SO_REUSEPORT` is off:
two servers silently sharing a port is never what we want, and in tests it hides port clashes.

`serve_until_signal` blocks until SIGTERM or SIGINT, then reports NOT_SERVING, stops accepting calls and gives
calls in flight `grace` seconds to finish (`stop_gracefully`). Kubernetes sends SIGTERM and waits
`terminationGracePeriodSeconds`; `grace` must be shorter.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent import futures
from types import FrameType
from typing import Any

import grpc
from grpc_health.v1 import health_pb2_grpc
from grpc_reflection.v1alpha import reflection as grpc_reflection

from services.shared.rpc import decoding, handlers
from services.shared.rpc.health import Health

log = logging.getLogger(__name__)

AddServicer = Callable[[Any, grpc.Server], None]
"""A generated `add_<Service>Servicer_to_server` function."""
Registration = tuple[AddServicer, object]
"""One servicer to serve: `(add_FooServicer_to_server, FooServicer())`."""

DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024
DEFAULT_MAX_WORKERS = 16
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_KEEPALIVE_OPTIONS = (
    # Ping a silent client every minute during calls and drop it if no answer in 20 s: a node that vanished
    # mid-watch frees its worker thread instead of holding it until TCP gives up (hours).
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    # Accept client pings every 20 s (rpc.channels pings every 30 s); the default 5 min would answer our own
    # clients' keepalive with GOAWAY "too_many_pings".
    ("grpc.http2.min_ping_interval_without_data_ms", 20_000),
)


def create_server(
    address: str,
    servicers: Sequence[Registration],
    *,
    health: Health | None = None,
    serving: bool = True,
    interceptors: Sequence[grpc.ServerInterceptor] = (),
    max_workers: int = DEFAULT_MAX_WORKERS,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    credentials: grpc.ServerCredentials | None = None,
) -> tuple[grpc.Server, int]:
    """A bound, not yet started server carrying `servicers`, health and reflection.

    Args:
        address: where to listen: "[::]:9090", "127.0.0.1:0" (any free port), "unix:/run/x.sock".
        servicers: `(add_fn, servicer)` pairs, e.g. `(jobs_pb2_grpc.add_JobsServicer_to_server, JobsServicer())`.
        health: the health status object to register; pass one to change status later (readiness following
            leadership). A fresh one is used when omitted.
        serving: the initial status of every service and of the overall "" (False until ready, e.g. leader).
        interceptors: server interceptors, outermost first (see the module docstring for the order); the
            malformed-request check is added inside them.
        max_workers: worker threads, i.e. calls running at once; more calls wait in the pool's queue.
        max_message_bytes: limit on each received and each sent message.
        credentials: TLS or local (`grpc.local_server_credentials()`) credentials; plaintext when None.

    Returns:
        The server and the port it bound (the real one when `address` asked for port 0).

    Raises:
        OSError: the address cannot be bound.
    """
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="grpc-worker"),
        interceptors=[*interceptors, decoding.MalformedRequestInterceptor()],
        options=[
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.so_reuseport", 0),
            *_KEEPALIVE_OPTIONS,
        ],
    )
    names = _register(server, servicers)
    health = health or Health()
    health_pb2_grpc.add_HealthServicer_to_server(health.servicer, server)
    health.register(names, serving=serving)
    grpc_reflection.enable_server_reflection([*names, *sorted(handlers.STOCK_SERVICES)], server)
    return server, _bind(server, address, credentials)


def _register(server: grpc.Server, servicers: Iterable[Registration]) -> list[str]:
    """Add each servicer; return the full names of the services they define, for health and reflection."""
    recorder = _ServiceNameRecorder(server)
    for add_to_server, servicer in servicers:
        add_to_server(servicer, recorder)
    return list(dict.fromkeys(recorder.names))


class _ServiceNameRecorder:
    """Stands in for the server while a generated `add_*_to_server` runs, noting the service names it adds.

    Generated code registers a `grpc.ServiceRpcHandler` per service, which knows its full name; recording it
    spares every caller from spelling the name out a second time next to the servicer.
    """

    def __init__(self, server: grpc.Server) -> None:
        self._server = server
        self.names: list[str] = []

    def add_generic_rpc_handlers(self, generic_handlers: Sequence[grpc.GenericRpcHandler]) -> None:
        self.names.extend(h.service_name() for h in generic_handlers if isinstance(h, grpc.ServiceRpcHandler))
        self._server.add_generic_rpc_handlers(generic_handlers)

    def __getattr__(self, name: str) -> Any:  # delegates every other server method
        return getattr(self._server, name)


def _bind(server: grpc.Server, address: str, credentials: grpc.ServerCredentials | None) -> int:
    try:
        port = server.add_secure_port(address, credentials) if credentials else server.add_insecure_port(address)
    except RuntimeError as error:
        raise OSError(f"cannot listen for gRPC on {address!r}: {error}") from error
    if not port:  # older grpcio reported failure as port 0 instead of raising
        raise OSError(f"cannot listen for gRPC on {address!r}")
    return int(port)


def stop_gracefully(server: grpc.Server, *, grace: float, health: Health | None = None) -> None:
    """Report NOT_SERVING, refuse new calls, let calls in flight run up to `grace` seconds, then cancel them."""
    if health is not None:
        health.enter_graceful_shutdown()
    server.stop(grace).wait()


def serve_until_signal(
    server: grpc.Server, *, grace: float, health: Health | None = None, signals: Sequence[int] = STOP_SIGNALS
) -> int:
    """Block until one of `signals` arrives, then `stop_gracefully`; return the signal number.

    Call it from the main thread (Python delivers signals only there) with the server already started. The
    previous signal handlers are restored before returning, so a second SIGINT during a long grace period
    still interrupts as usual.
    """
    received: list[int] = []
    arrived = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        arrived.set()

    previous = {each: signal.signal(each, on_signal) for each in signals}
    try:
        while not arrived.wait(timeout=1.0):
            pass
    finally:
        for each, handler in previous.items():
            signal.signal(each, handler)
    log.info("received %s, stopping gRPC server (grace %.1fs)", signal.Signals(received[0]).name, grace)
    stop_gracefully(server, grace=grace, health=health)
    return received[0]
