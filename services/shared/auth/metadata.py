"""How a bearer token travels in gRPC metadata, for both sides: `authorization: Bearer <token>`.

gRPC metadata keys are lower-case HTTP/2 headers; the value follows RFC 6750 (the scheme is case-insensitive).
Exactly one entry is accepted: two would leave it ambiguous which identity a call runs as.
"""

from __future__ import annotations

from collections.abc import Iterable

from services.shared.auth.errors import Unauthenticated

AUTHORIZATION_METADATA = "authorization"
BEARER_SCHEME = "Bearer"
# Worded so the log and status redactor (`services.shared.logging`) leaves them intact.
MISSING = 'missing credentials: send the metadata entry "authorization" with the value "Bearer" and a token'
MALFORMED = 'malformed "authorization" metadata entry: expected "Bearer", a space, and a token'


def authorization_entry(token: str) -> tuple[str, str]:
    """The metadata entry that presents `token`."""
    return AUTHORIZATION_METADATA, f"{BEARER_SCHEME} {token}"


def bearer_token(metadata: Iterable[tuple[str, str | bytes]] | None) -> str:
    """The token of the call's single `authorization: Bearer <token>` metadata entry.

    Raises:
        Unauthenticated: absent, repeated, not the Bearer scheme, or empty.
    """
    values = [value for key, value in metadata or () if key.lower() == AUTHORIZATION_METADATA]
    if not values:
        raise Unauthenticated(MISSING)
    if len(values) > 1:
        raise Unauthenticated("more than one 'authorization' metadata entry")
    value = values[0].decode(errors="replace") if isinstance(values[0], bytes) else values[0]
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != BEARER_SCHEME.lower() or not token.strip():
        raise Unauthenticated(MALFORMED)
    return token.strip()
