"""Wrapping a servicer method so code runs around it, for server interceptors.

A sync gRPC server calls `ServerInterceptor.intercept_service` on its single polling thread, before the call is
handed to the worker pool. Anything slow there (a TokenReview round trip, say) would stall every other call on
the server. So our interceptors do no work in `intercept_service` itself: they return the method's handler
with its behaviour wrapped, and the wrapper runs on the worker thread that runs the method, where blocking is
fine and where a `contextvars.ContextVar` set for the call is seen by the servicer.

For response-streaming methods the wrapper must stay active while the response generator is iterated (the
servicer's code runs lazily, one `next()` at a time), so the wrapped behaviour is itself a generator that
`yield from`s the original one inside the `with` block.

The stock health and reflection services are left unwrapped: they need no authentication or error mapping,
and wrapping would hide the health servicer's non-blocking `Watch` marker from the server.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import grpc
from grpc_health.v1 import health as grpc_health
from grpc_reflection.v1alpha import reflection as grpc_reflection

STOCK_SERVICES = frozenset({grpc_health.SERVICE_NAME, grpc_reflection.SERVICE_NAME})
"""Services every server carries and every caller may use, without authentication (design §2)."""

Around = Callable[[grpc.ServicerContext], contextlib.AbstractContextManager[None]]
"""Makes the context manager a method call runs in, given that call's servicer context."""
Continuation = Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None]
"""What `ServerInterceptor.intercept_service` receives: finds the next handler for a call."""


def service_of(method: str) -> str:
    """`"/prepull.v1.Jobs/GetJob"` → `"prepull.v1.Jobs"`."""
    return method.lstrip("/").partition("/")[0]


def is_stock(method: str) -> bool:
    """True for health and reflection methods (see `STOCK_SERVICES`)."""
    return service_of(method) in STOCK_SERVICES


def wrap(handler: grpc.RpcMethodHandler | None, around: Around) -> grpc.RpcMethodHandler | None:
    """The same handler with its behaviour run inside `around(context)`; `None` (unknown method) stays `None`."""
    if handler is None:
        return None
    if handler.response_streaming:
        factory = (
            grpc.stream_stream_rpc_method_handler if handler.request_streaming else grpc.unary_stream_rpc_method_handler
        )
        behavior = handler.stream_stream if handler.request_streaming else handler.unary_stream
        wrapped = _streaming(behavior, around)
    else:
        factory = (
            grpc.stream_unary_rpc_method_handler if handler.request_streaming else grpc.unary_unary_rpc_method_handler
        )
        behavior = handler.stream_unary if handler.request_streaming else handler.unary_unary
        wrapped = _unary(behavior, around)
    return factory(
        wrapped, request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer
    )


def _unary(behavior: Callable[..., Any], around: Around) -> Callable[[Any, grpc.ServicerContext], Any]:
    def call(request: Any, context: grpc.ServicerContext) -> Any:
        with around(context):
            return behavior(request, context)

    return call


def _streaming(behavior: Callable[..., Any], around: Around) -> Callable[[Any, grpc.ServicerContext], Iterator[Any]]:
    def call(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        with around(context):
            yield from behavior(request, context)

    return call
