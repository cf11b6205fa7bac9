"""Authenticating a bearer token with the API server's TokenReview API, for one audience.

We never verify tokens ourselves: the API server knows its signing keys, whether the Pod a token is bound to
still exists, and which node it runs on. We ask it with `spec.audiences = [audience]`, the audience the called
method requires (`prepull.io/credentials`, `prepull.io/inventory`), so a token minted for one of our APIs
cannot be replayed against another, and an ordinary API-server token (audience: the API server) is refused.
As the TokenReview API asks of audience-aware clients, we also check that the answer's `status.audiences`
contains ours: an empty list means "valid for the API server", which is not us.

Successful reviews are cached for a few seconds (`cache.TtlCache`), keyed by SHA-256 of the token plus the
audience; the token itself is never stored, logged, or put in an error. An entry never outlives the token's
own `exp` claim (read, not verified, from the JWT: it can only shorten the entry's life). Refusals are not
cached, so a token that just became valid (its Pod was created a moment ago) works on the next call.

The server's own identity needs RBAC `create` on `tokenreviews.authentication.k8s.io` (the built-in
`system:auth-delegator` ClusterRole grants it).
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import json
import logging
from collections.abc import Mapping
from typing import Any, Protocol

from services.shared.auth.cache import TtlCache
from services.shared.auth.caller import Caller
from services.shared.auth.errors import ReviewUnavailable, Unauthenticated
from services.shared.clock import Clock, SystemClock
from services.shared.kube import client, kubeapi, resources
from services.shared.kube import errors as kube_errors

log = logging.getLogger(__name__)

MAX_TOKEN_LENGTH = 16 * 1024
"""Longer "tokens" are refused unread; Kubernetes tokens are about 1 KiB, and this bounds the work per call."""
DEFAULT_CACHE_TTL_SECONDS = 10.0
DEFAULT_MAX_CACHED = 4096
"""One entry per live token and audience: a few per node, so this covers clusters of about 2000 nodes."""
DEFAULT_REQUEST_TIMEOUT_SECONDS = 10.0


class Authenticator(Protocol):
    """Identifies the holder of a bearer token for an audience."""

    def authenticate(self, token: str, audience: str) -> Caller:
        """The caller the token belongs to.

        Raises:
            Unauthenticated: the token is malformed, invalid, expired or not valid for `audience`.
            ReviewUnavailable: the answer could not be obtained now.
        """
        ...


def token_digest(token: str) -> str:
    """A stable, irreversible name for a token: safe as a cache key and in debug logs."""
    return hashlib.sha256(token.encode()).hexdigest()


class TokenReviewAuthenticator:
    """Asks the API server who a token belongs to, remembering the answer for a few seconds.

    Args:
        api_client: a client whose identity may create TokenReviews.
        cache_ttl_seconds: how long a successful review is reused; 0 disables caching.
        max_cached: bound on cached reviews (least recently used are evicted).
        request_timeout_seconds: bound on one TokenReview round trip, so a hung API server cannot hold a
            worker thread forever.
        clock: time source for cache expiry.
    """

    def __init__(
        self,
        api_client: client.ApiClient,
        *,
        cache_ttl_seconds: float = DEFAULT_CACHE_TTL_SECONDS,
        max_cached: int = DEFAULT_MAX_CACHED,
        request_timeout_seconds: float = DEFAULT_REQUEST_TIMEOUT_SECONDS,
        clock: Clock | None = None,
    ) -> None:
        """Prepare the API and the cache; no request is made yet."""
        self._api = kubeapi.KubeApi(api_client)
        self._clock = clock or SystemClock()
        self._ttl = cache_ttl_seconds
        self._timeout = request_timeout_seconds
        self._cache: TtlCache[tuple[str, str], Caller] = TtlCache(max_entries=max_cached, clock=self._clock)

    def authenticate(self, token: str, audience: str) -> Caller:
        """See `Authenticator.authenticate`."""
        if not token or len(token) > MAX_TOKEN_LENGTH:
            raise Unauthenticated("malformed bearer token", detail=f"token length {len(token)}")
        key = (token_digest(token), audience)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        caller = self._review(token, audience)
        self._cache.put(key, caller, ttl_seconds=self._cache_ttl(token))
        return caller

    def _review(self, token: str, audience: str) -> Caller:
        body = {
            "apiVersion": resources.TOKEN_REVIEWS.api_version,
            "kind": resources.TOKEN_REVIEWS.kind,
            "spec": {"token": token, "audiences": [audience]},
        }
        try:
            response = self._api.create(resources.TOKEN_REVIEWS, body, timeout=self._timeout)
        except kube_errors.KubeError as failure:
            raise ReviewUnavailable(
                "cannot verify the token right now; retry later", detail=f"TokenReview failed: {failure}"
            ) from failure
        return caller_from_review_status(response.get("status"), audience)

    def _cache_ttl(self, token: str) -> float:
        expiry = unverified_expiry(token)
        if expiry is None:
            return self._ttl
        return min(self._ttl, (expiry - self._clock.now()).total_seconds())


def caller_from_review_status(status: Mapping[str, Any] | None, audience: str) -> Caller:
    """The caller a TokenReview status describes, if it accepts the token for `audience`.

    Raises:
        Unauthenticated: not authenticated, or not for `audience` (the API server's reason goes to `detail`).
    """
    refused = f"token is invalid, expired, or not issued for audience {audience!r}"
    if not status or not status.get("authenticated"):
        raise Unauthenticated(refused, detail=(status or {}).get("error") or "not authenticated")
    audiences = status.get("audiences") or []
    if audience not in audiences:
        raise Unauthenticated(refused, detail=f"token is valid for audiences {audiences or '[apiserver]'}")
    user = status.get("user") or {}
    return Caller.from_user_info(
        username=user.get("username") or "",
        uid=user.get("uid"),
        groups=user.get("groups"),
        extra=user.get("extra"),
        audiences=audiences,
    )


def unverified_expiry(token: str) -> datetime.datetime | None:
    """The `exp` claim of a JWT, read without checking the signature; None when it is not a readable JWT.

    Only ever used to shorten how long a review the API server already accepted is cached.
    """
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        expiry = claims.get("exp") if isinstance(claims, dict) else None
        if isinstance(expiry, int | float) and not isinstance(expiry, bool):
            return datetime.datetime.fromtimestamp(expiry, datetime.UTC)
    except (ValueError, binascii.Error, OverflowError, OSError):
        pass
    return None
