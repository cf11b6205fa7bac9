"""One table from our errors to gRPC status codes, and the only way a servicer fails a call.

Servicers are thin (principle 11): they call application code and let its exceptions fly. `StatusInterceptor`
catches them on the way out and answers with the code `DEFAULT_TABLE` (or a service's `extended()` table)
gives the exception's class, looked up along its MRO so a subclass inherits its parent's code. The message is
`str(error)`: our error types promise messages fit for a client and free of credentials (and the text is passed
through the log redactor anyway). Each reply carries a `google.rpc.ErrorInfo` detail (domain `prepull.io`,
reason = the error class in UPPER_SNAKE, e.g. `INVALID_IMAGE_REFERENCE`), so clients can branch on a stable
reason instead of parsing text (`error_reason()`).

Anything not in the table is a bug: the client gets INTERNAL "internal error" and nothing else (Python's
default would send `str(exception)`, which may say more than it should), and the traceback goes to our log.

Choices worth knowing: a Kubernetes `Conflict` is ABORTED (retry the read-modify-write), not ALREADY_EXISTS;
`Forbidden` is PERMISSION_DENIED because an admission policy refusing the caller's request arrives as a 403;
throttling and server errors from the API server are UNAVAILABLE, the one code our channels retry.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator, Mapping
from typing import NoReturn

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2  # type: ignore[import-untyped]  # no stubs published
from grpc_status import rpc_status

from services.shared import credentials
from services.shared import logging as shared_logging
from services.shared.api import imageref, wire
from services.shared.auth import errors as auth_errors
from services.shared.kube import errors as kube_errors
from services.shared.rpc import handlers

log = logging.getLogger(__name__)

ERROR_DOMAIN = "prepull.io"
INTERNAL_MESSAGE = "internal error"
Code = grpc.StatusCode


class StatusTable:
    """An immutable mapping from exception classes to status codes, matched along the exception's MRO."""

    def __init__(self, codes: Mapping[type[BaseException], grpc.StatusCode]) -> None:
        """Copy `codes`; later changes to the mapping passed in do not affect the table."""
        self._codes = dict(codes)

    def code_for(self, error: BaseException) -> grpc.StatusCode | None:
        """The code of the nearest class of `error` in the table, or None when it is not mapped."""
        return next((self._codes[cls] for cls in type(error).__mro__ if cls in self._codes), None)

    def extended(self, codes: Mapping[type[BaseException], grpc.StatusCode]) -> StatusTable:
        """A new table with a service's own domain errors added (they win over entries for the same class)."""
        return StatusTable({**self._codes, **codes})


DEFAULT_TABLE = StatusTable(
    {
        auth_errors.Unauthenticated: Code.UNAUTHENTICATED,
        auth_errors.PermissionDenied: Code.PERMISSION_DENIED,
        auth_errors.ReviewUnavailable: Code.UNAVAILABLE,
        imageref.InvalidImageReference: Code.INVALID_ARGUMENT,
        wire.InvalidObjectError: Code.INVALID_ARGUMENT,
        credentials.InvalidPullSecret: Code.FAILED_PRECONDITION,
        kube_errors.KubeError: Code.INTERNAL,
        kube_errors.BadRequest: Code.INTERNAL,
        kube_errors.NotFound: Code.NOT_FOUND,
        kube_errors.AlreadyExists: Code.ALREADY_EXISTS,
        kube_errors.Conflict: Code.ABORTED,
        kube_errors.Gone: Code.ABORTED,
        kube_errors.Invalid: Code.INVALID_ARGUMENT,
        kube_errors.Forbidden: Code.PERMISSION_DENIED,
        kube_errors.Unauthorized: Code.UNAVAILABLE,
        kube_errors.TooManyRequests: Code.UNAVAILABLE,
        kube_errors.ServerError: Code.UNAVAILABLE,
        kube_errors.TransportError: Code.UNAVAILABLE,
        NotImplementedError: Code.UNIMPLEMENTED,
        TimeoutError: Code.DEADLINE_EXCEEDED,
    }
)


def reason_of(error: BaseException) -> str:
    """The stable ErrorInfo reason for an error class, without an `Error` suffix.

    `InvalidImageReference` → `INVALID_IMAGE_REFERENCE`, `ImageNotAssignedError` → `IMAGE_NOT_ASSIGNED`.
    """
    name = type(error).__name__
    name = name.removesuffix("Error") or name
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).upper()


def to_status(error: BaseException, table: StatusTable = DEFAULT_TABLE) -> grpc.Status:
    """The status a call failing with `error` ends with (INTERNAL, without detail, for unmapped errors)."""
    code = table.code_for(error)
    if code is None:
        code, message, reason = Code.INTERNAL, INTERNAL_MESSAGE, "INTERNAL"
    else:
        message, reason = shared_logging.redact_text(str(error)) or type(error).__name__, reason_of(error)
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.ErrorInfo(reason=reason, domain=ERROR_DOMAIN))
    return rpc_status.to_status(status_pb2.Status(code=code.value[0], message=message, details=[detail]))


def abort(context: grpc.ServicerContext, error: BaseException, table: StatusTable = DEFAULT_TABLE) -> NoReturn:
    """End the call with the status for `error` (raises, as `context.abort` does)."""
    context.abort_with_status(to_status(error, table))
    raise AssertionError("context.abort_with_status returned")  # pragma: no cover -- it always raises


def error_reason(error: grpc.RpcError) -> str | None:
    """Client side: the ErrorInfo reason of a failed call from one of our servers, or None if it has none."""
    status = rpc_status.from_call(error) if isinstance(error, grpc.Call) else None
    for detail in status.details if status is not None else ():
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info) and info.domain == ERROR_DOMAIN:
            return str(info.reason)
    return None


class StatusInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]  # grpc ships no type stubs
    """Turns exceptions escaping a servicer into statuses by `table`; install it innermost."""

    def __init__(self, table: StatusTable = DEFAULT_TABLE) -> None:
        """Use `table` (a service passes `DEFAULT_TABLE.extended({...})` for its own errors)."""
        self._table = table

    def intercept_service(
        self, continuation: handlers.Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        """Wrap every method except health and reflection."""
        handler = continuation(handler_call_details)
        if handlers.is_stock(handler_call_details.method):
            return handler
        return handlers.wrap(handler, lambda context: self._mapped(context, handler_call_details.method))

    @contextlib.contextmanager
    def _mapped(self, context: grpc.ServicerContext, method: str) -> Iterator[None]:
        try:
            yield
        except Exception as error:
            if context.code() is not None:  # the servicer already aborted; keep its status
                raise
            if self._table.code_for(error) is None:
                log.exception("%s failed with an unexpected error", method)
            else:
                log.debug("%s failed: %s", method, type(error).__name__)
            abort(context, error, self._table)
