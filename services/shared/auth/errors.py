"""Why a call was refused, as exceptions the gRPC layer turns into status codes (`rpc.status`)::

    AuthError               a call could not be admitted
    ├── Unauthenticated     no token, a malformed one, or the API server did not accept it for this
    │                       audience (invalid signature, expired, wrong audience, its Pod is gone)
    │                       → UNAUTHENTICATED
    ├── PermissionDenied    the caller is known but may not do this → PERMISSION_DENIED
    └── ReviewUnavailable   the API server could not be asked (down, throttling, our own RBAC missing)
                            → UNAVAILABLE, which clients retry

`str(error)` is what the client sees, so it says what to fix without helping an attacker: it never contains
the token and does not say *why* a token was rejected (that would tell a forger which check failed).
`detail` carries the API server's own reason for our logs.
"""

from __future__ import annotations


class AuthError(Exception):
    """A call could not be admitted; `str()` is safe to send to the client, `detail` is for logs."""

    def __init__(self, message: str, *, detail: str = "") -> None:
        """Keep the client-facing message and the log-only detail apart."""
        super().__init__(message)
        self.detail = detail


class Unauthenticated(AuthError):  # noqa: N818 -- named after the gRPC status it becomes
    """The caller could not be identified for this audience."""


class PermissionDenied(AuthError):  # noqa: N818 -- named after the gRPC status it becomes
    """The caller is identified but not allowed to make this call."""


class ReviewUnavailable(AuthError):  # noqa: N818 -- named after the gRPC status it becomes
    """The API server could not review the token or the access; retrying later may succeed."""
