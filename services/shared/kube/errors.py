"""Our vocabulary for apiserver failures, so no caller ever sees the client library's exceptions.

The official client raises one `ApiException` for every HTTP answer and lets urllib3 and socket errors
through untouched. Callers would have to compare status codes and parse JSON bodies at every `except`, and
every one of them would break if we replaced the client. `translate()` turns all of them into this tree,
once, at the edge (`kubeapi.KubeApi` and `watching`); the original exception is kept as `__cause__`::

    KubeError                  any failure talking to the apiserver; .code, .reason, .message, .status
    ├── BadRequest             400: malformed request (a bug on our side)
    ├── Unauthorized           401: credentials missing, expired or rejected
    ├── Forbidden              403: RBAC denies it, or the namespace is terminating
    ├── NotFound               404: the object (or its namespace, or the resource) does not exist
    ├── Conflict               409 Conflict: stale resourceVersion or failed uid/resourceVersion precondition
    ├── AlreadyExists          409 AlreadyExists: create of a name that is taken (not retryable like Conflict)
    ├── Gone                   410 / reason Expired: resourceVersion or continue token too old; re-list
    ├── Invalid                422: the object fails validation; .causes says which fields and why
    ├── TooManyRequests        429: API priority and fairness pushed back; .retry_after_seconds
    ├── ServerError            5xx: the apiserver (or etcd behind it) failed; retry with back-off
    └── TransportError         no HTTP answer at all: refused, reset, TLS failure, timed out

Watch streams report failures as ERROR events that carry a `Status` object instead of an HTTP error;
`from_status()` turns those into the same tree, so a 410 is a `Gone` however it arrived.

`AlreadyExists` is deliberately not a `Conflict`: a conflict means "re-read and try again", an existing
name never goes away by retrying. Class names are the apiserver's `StatusReason`s (`NotFound`, not
`NotFoundError`), so they read like the Status they stand for. Messages are cut to a bounded length so one
odd response (an HTML error page from a proxy) cannot flood the logs; the apiserver's Status messages never
contain credentials.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import urllib3.exceptions
from kubernetes.client.exceptions import ApiException

MAX_MESSAGE_LENGTH = 1024
"""Longer messages are cut: enough for every field cause of a 422, too short to flood a log."""


@dataclass(frozen=True)
class Cause:
    """One entry of `Status.details.causes`: which field failed and why (422 Invalid carries these)."""

    reason: str
    message: str
    field: str


class KubeError(Exception):
    """A failed apiserver call, with what the apiserver said about it.

    Attributes:
        code: HTTP status (or the Status object's `code`); None when there was no answer.
        reason: the Status `reason` (`NotFound`, `Conflict`, `Expired`, ...), "" when absent.
        message: human-readable text, bounded in length.
        status: the parsed `Status` object, {} when the answer was not one.
    """

    def __init__(
        self, message: str, *, code: int | None = None, reason: str = "", status: Mapping[str, Any] | None = None
    ) -> None:
        self.message = _bounded(message)
        self.code = code
        self.reason = reason
        self.status: Mapping[str, Any] = status or {}
        super().__init__(self.message)

    @property
    def causes(self) -> tuple[Cause, ...]:
        """The field-level causes from `Status.details.causes` (mostly set on `Invalid`)."""
        raw = _details(self.status).get("causes") or []
        return tuple(
            Cause(reason=str(c.get("reason", "")), message=str(c.get("message", "")), field=str(c.get("field", "")))
            for c in raw
            if isinstance(c, Mapping)
        )

    @property
    def retry_after_seconds(self) -> int | None:
        """The server's hint (`details.retryAfterSeconds`) on when to retry, if it gave one."""
        value = _details(self.status).get("retryAfterSeconds")
        return value if isinstance(value, int) else None

    def __str__(self) -> str:
        prefix = f"{self.code} {self.reason}".strip() if self.code is not None else type(self).__name__
        return f"{prefix}: {self.message}"


class BadRequest(KubeError):  # noqa: N818 - named after the Kubernetes StatusReason
    """400: the request itself is malformed; retrying will not help."""


class Unauthorized(KubeError):  # noqa: N818 - named after the Kubernetes StatusReason
    """401: no valid credentials; a rotated token that was not re-read looks like this."""


class Forbidden(KubeError):  # noqa: N818 - named after the Kubernetes StatusReason
    """403: authorization denied it (RBAC), or admission forbade it (e.g. a terminating namespace)."""


class NotFound(KubeError):  # noqa: N818 - named after the Kubernetes StatusReason
    """404: the object, its namespace, or the resource type does not exist."""


class Conflict(KubeError):  # noqa: N818 - named after the Kubernetes StatusReason
    """409 Conflict: someone wrote the object since we read it, or a uid/resourceVersion precondition failed."""


class AlreadyExists(KubeError):  # noqa: N818 - named after the Kubernetes StatusReason
    """409 AlreadyExists: a create hit a name that is taken."""


class Gone(KubeError):  # noqa: N818 - named after the Kubernetes StatusReason
    """410 Gone / reason Expired: the resourceVersion (or continue token) is older than the server keeps."""


class Invalid(KubeError):  # noqa: N818 - named after the Kubernetes StatusReason
    """422: the object fails validation; `causes` lists each field and the apiserver's message."""

    def __str__(self) -> str:
        details = "; ".join(f"{c.field}: {c.message}" if c.field else c.message for c in self.causes)
        return f"{super().__str__()}" + (f" [{details}]" if details and details not in self.message else "")


class TooManyRequests(KubeError):  # noqa: N818 - named after the Kubernetes StatusReason
    """429: the apiserver's priority and fairness shed the request; back off and retry."""


class ServerError(KubeError):
    """5xx: the apiserver or etcd failed, or timed out; retry with back-off."""


class TransportError(KubeError):
    """No HTTP answer: connection refused or reset, TLS failure, or timeout. The apiserver may be restarting."""


_BY_REASON: Mapping[str, type[KubeError]] = {
    "BadRequest": BadRequest,
    "Unauthorized": Unauthorized,
    "Forbidden": Forbidden,
    "NotFound": NotFound,
    "Conflict": Conflict,
    "AlreadyExists": AlreadyExists,
    "Gone": Gone,
    "Expired": Gone,
    "Invalid": Invalid,
    "TooManyRequests": TooManyRequests,
}

_BY_CODE: Mapping[int, type[KubeError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    410: Gone,
    422: Invalid,
    429: TooManyRequests,
}

_TRANSPORT_FAILURES = (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError)


def translate(exc: BaseException) -> KubeError:
    """Map any failure of a client call to our tree; the caller raises the result `from exc`.

    Args:
        exc: an `ApiException`, a urllib3/http.client/socket error, or already a `KubeError` (returned as is).

    Returns:
        The matching `KubeError` subclass. Anything unrecognised becomes a plain `KubeError`.
    """
    if isinstance(exc, KubeError):
        return exc
    if isinstance(exc, ApiException):
        return _from_api_exception(exc)
    if isinstance(exc, _TRANSPORT_FAILURES):
        return TransportError(f"{type(exc).__name__}: {exc}")
    return KubeError(f"{type(exc).__name__}: {exc}")


def from_status(status: Mapping[str, Any], *, code: int | None = None) -> KubeError:
    """Build the error a `Status` object describes (an HTTP error body or a watch ERROR event's object).

    Args:
        status: the decoded `Status` (`code`, `reason`, `message`, `details`).
        code: the HTTP status, used when the Status has no `code`.
    """
    status_code = status.get("code")
    effective = status_code if isinstance(status_code, int) and status_code else code
    reason = str(status.get("reason") or "")
    message = str(status.get("message") or reason or "no message")
    kind = _BY_REASON.get(reason) or _kind_for_code(effective)
    return kind(message, code=effective, reason=reason, status=status)


def needs_relist(error: KubeError) -> bool:
    """Whether a watcher must drop its resourceVersion and list again.

    True for `Gone`, and for the 504 `ResourceVersionTooLarge` the apiserver sends when asked for a version
    it has not seen yet (after etcd was restored from a backup, for example).
    """
    return isinstance(error, Gone) or any(c.reason == "ResourceVersionTooLarge" for c in error.causes)


def _from_api_exception(exc: ApiException) -> KubeError:
    code = exc.status if isinstance(exc.status, int) else None
    if not code:
        return TransportError(str(exc.reason or "request failed before an answer"))
    status = _decode_status(exc.body)
    if status is not None:
        return from_status(status, code=code)
    text = exc.body.decode(errors="replace") if isinstance(exc.body, bytes) else str(exc.body or exc.reason or "")
    return _kind_for_code(code)(text or f"HTTP {code}", code=code, reason=str(exc.reason or ""))


def _decode_status(body: object) -> Mapping[str, Any] | None:
    if not isinstance(body, str | bytes) or not body:
        return None
    try:
        decoded = json.loads(body)
    except ValueError:
        return None
    return decoded if isinstance(decoded, dict) and decoded.get("kind") == "Status" else None


def _kind_for_code(code: int | None) -> type[KubeError]:
    if code is None:
        return KubeError
    if code >= 500:
        return ServerError
    return _BY_CODE.get(code, KubeError)


def _details(status: Mapping[str, Any]) -> Mapping[str, Any]:
    details = status.get("details")
    return details if isinstance(details, Mapping) else {}


def _bounded(message: str) -> str:
    return message if len(message) <= MAX_MESSAGE_LENGTH else message[: MAX_MESSAGE_LENGTH - 3] + "..."
