"""Refusing request bytes that do not decode, with INVALID_ARGUMENT and one quiet log line, on every method.

grpc-python decodes a request before any interceptor's wrapper or the servicer runs. When the bytes are not a
valid message it answers INTERNAL "Exception deserializing request!" and logs a full traceback, once per call,
for anyone able to open a connection: a cheap way to flood the logs, and the wrong code (the fault is the
client's). `MalformedRequestInterceptor`, which `server.create_server` installs innermost on every server, swaps
each method's deserializer for one that never raises: bytes that do not decode become a `MalformedRequestError`
value, and the method's behaviour refuses that value with INVALID_ARGUMENT (ErrorInfo reason
`MALFORMED_REQUEST`) before the servicer sees it. The log line is at debug level and has no traceback.

Why authentication comes first: the check sits innermost, so the interceptors outside it (tracing,
authentication) run before it. The auth interceptor reads only metadata, so a caller without a valid token is
refused UNAUTHENTICATED whatever bytes it sent. It learns nothing about a method's messages until it may call
the method, and "no token" gets the same answer for every body. Only an admitted caller, or any caller of a
public method (health, reflection), gets INVALID_ARGUMENT. The price is a TokenReview per malformed call with an
unknown token. A well-formed call costs the same, and reviews are cached.

Request-streaming methods (reflection) get the same check on each message as the servicer pulls it from the
request iterator. Attributes the server reads from a behaviour (the health servicer's non-blocking `Watch`
marker) are carried over to the wrapper, so wrapping the stock services changes nothing else.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

import grpc

from services.shared.rpc import handlers, status

log = logging.getLogger(__name__)

Deserializer = Callable[[bytes], Any]


class MalformedRequestError(ValueError):
    """The request bytes are not a valid message of the method's request type; the message says which type."""


_TABLE = status.StatusTable({MalformedRequestError: grpc.StatusCode.INVALID_ARGUMENT})


class MalformedRequestInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]  # grpc ships no type stubs
    """Makes undecodable requests end in INVALID_ARGUMENT instead of INTERNAL; `create_server` installs it."""

    def intercept_service(
        self, continuation: handlers.Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        """The method's handler with a deserializer that never raises and a behaviour that refuses what failed."""
        return tolerant(continuation(handler_call_details), handler_call_details.method)


def tolerant(handler: grpc.RpcMethodHandler | None, method: str) -> grpc.RpcMethodHandler | None:
    """`handler` decoding leniently and refusing `MalformedRequestError`s; `None` (unknown method) stays `None`."""
    if handler is None or handler.request_deserializer is None:
        return handler
    factory, behavior_name = _FACTORIES[(handler.request_streaming, handler.response_streaming)]
    behavior = getattr(handler, behavior_name)
    checked = _checked_stream(behavior, method) if handler.request_streaming else _checked_unary(behavior, method)
    return factory(
        checked,
        request_deserializer=_lenient(handler.request_deserializer),
        response_serializer=handler.response_serializer,
    )


_FACTORIES: dict[tuple[bool, bool], tuple[Callable[..., grpc.RpcMethodHandler], str]] = {
    (False, False): (grpc.unary_unary_rpc_method_handler, "unary_unary"),
    (False, True): (grpc.unary_stream_rpc_method_handler, "unary_stream"),
    (True, False): (grpc.stream_unary_rpc_method_handler, "stream_unary"),
    (True, True): (grpc.stream_stream_rpc_method_handler, "stream_stream"),
}
"""(request_streaming, response_streaming) → the handler factory and the handler attribute holding the behaviour."""


def _lenient(deserializer: Deserializer) -> Deserializer:
    """`deserializer`, returning a `MalformedRequestError` instead of raising.

    A deserializer is a pure function of the bytes, so any exception it raises means the bytes are unacceptable
    (protobuf raises `DecodeError`); none of it is our bug to log a traceback for.
    """

    def decode(serialized: bytes) -> Any:
        try:
            return deserializer(serialized)
        except Exception as error:
            return MalformedRequestError(f"malformed request: {error}")

    return decode


def _checked_unary(behavior: Callable[..., Any], method: str) -> Callable[..., Any]:
    """Refuse a malformed request before `behavior` runs; extra arguments (a non-blocking callback) pass through."""

    @functools.wraps(behavior)
    def call(request: Any, context: grpc.ServicerContext, *rest: Any) -> Any:
        if isinstance(request, MalformedRequestError):
            _refuse(context, method, request)
        return behavior(request, context, *rest)

    return call


def _checked_stream(behavior: Callable[..., Any], method: str) -> Callable[..., Any]:
    """Refuse the call at the first malformed message the servicer pulls from the request stream."""

    @functools.wraps(behavior)
    def call(requests: Iterator[Any], context: grpc.ServicerContext, *rest: Any) -> Any:
        return behavior(_checked_messages(requests, context, method), context, *rest)

    return call


def _checked_messages(requests: Iterator[Any], context: grpc.ServicerContext, method: str) -> Iterator[Any]:
    for request in requests:
        if isinstance(request, MalformedRequestError):
            _refuse(context, method, request)
        yield request


def _refuse(context: grpc.ServicerContext, method: str, error: MalformedRequestError) -> NoReturn:
    log.debug("refused %s from %s: %s", method, context.peer(), error)
    status.abort(context, error, _TABLE)
