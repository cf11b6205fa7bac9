"""Authorizing a caller with the API server's SubjectAccessReview: "may this user do that in Kubernetes?".

Our gRPC methods mirror Kubernetes actions (`Jobs.CreateJob` is `create imagepulljobs` in a namespace,
`NodeInventory.WhichNodes` is `get nodeimages`), so the answer comes from the cluster's own RBAC (and any other
authorizer the API server runs): operators grant our API with the Roles they already manage, and a user can do
through us exactly what they could do with kubectl (design §2).

The review sends the caller's username, uid, groups and extra exactly as TokenReview returned them, so
authorizers that use extra (node-scoped rules) see the same identity the API server would.

Answers are cached briefly, per (caller, action): allowed answers for `allowed_ttl_seconds`, denials for the
shorter `denied_ttl_seconds`, so a freshly granted Role takes effect within seconds. The server's identity
needs `create` on `subjectaccessreviews.authorization.k8s.io` (`system:auth-delegator` grants it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

from services.shared.auth.cache import TtlCache
from services.shared.auth.caller import Caller
from services.shared.auth.errors import PermissionDenied, ReviewUnavailable
from services.shared.auth.tokenreview import DEFAULT_MAX_CACHED, DEFAULT_REQUEST_TIMEOUT_SECONDS
from services.shared.clock import Clock, SystemClock
from services.shared.kube import client, kubeapi, resources
from services.shared.kube import errors as kube_errors

log = logging.getLogger(__name__)

_Identity = tuple[str, str, tuple[str, ...], tuple[tuple[str, tuple[str, ...]], ...]]
DEFAULT_ALLOWED_TTL_SECONDS = 10.0
DEFAULT_DENIED_TTL_SECONDS = 2.0


@dataclass(frozen=True)
class ResourceAccess:
    """A Kubernetes action: `verb` on `resource` in API `group`, optionally in one namespace / on one name.

    An empty `namespace` means cluster-wide (all namespaces, or a cluster-scoped resource such as
    `nodeimages`); the core group is "".
    """

    verb: str
    resource: str
    group: str = ""
    namespace: str = ""
    name: str = ""
    subresource: str = ""

    def describe(self) -> str:
        """The action in kubectl words, for messages: `create imagepulljobs.prepull.io in namespace "a"`."""
        target = f"{self.resource}.{self.group}" if self.group else self.resource
        target += f"/{self.subresource}" if self.subresource else ""
        target += f" {self.name!r}" if self.name else ""
        scope = f' in namespace "{self.namespace}"' if self.namespace else " cluster-wide"
        return f"{self.verb} {target}{scope}"


class AccessReviewer(Protocol):
    """Answers whether a caller may perform an action."""

    def allowed(self, caller: Caller, access: ResourceAccess) -> bool:
        """True when allowed.

        Raises:
            ReviewUnavailable: the answer could not be obtained now.
        """
        ...


def require(reviewer: AccessReviewer, caller: Caller, access: ResourceAccess) -> None:
    """Raise `PermissionDenied` (naming caller and action) unless `caller` may perform `access`.

    Servicers call this for checks that depend on the request (the namespace of the job to create).
    """
    if not reviewer.allowed(caller, access):
        raise PermissionDenied(f"{caller.username} may not {access.describe()}")


class SubjectAccessReviewer:
    """Asks the API server's authorizers (RBAC...) through SubjectAccessReview, caching answers briefly.

    Args:
        api_client: a client whose identity may create SubjectAccessReviews.
        allowed_ttl_seconds: how long an "allowed" answer is reused; 0 disables.
        denied_ttl_seconds: how long a "denied" answer is reused; 0 disables.
        max_cached: bound on cached answers.
        request_timeout_seconds: bound on one review round trip.
        clock: time source for cache expiry.
    """

    def __init__(
        self,
        api_client: client.ApiClient,
        *,
        allowed_ttl_seconds: float = DEFAULT_ALLOWED_TTL_SECONDS,
        denied_ttl_seconds: float = DEFAULT_DENIED_TTL_SECONDS,
        max_cached: int = DEFAULT_MAX_CACHED,
        request_timeout_seconds: float = DEFAULT_REQUEST_TIMEOUT_SECONDS,
        clock: Clock | None = None,
    ) -> None:
        """Prepare the API and the cache; no request is made yet."""
        self._api = kubeapi.KubeApi(api_client)
        self._ttls = {True: allowed_ttl_seconds, False: denied_ttl_seconds}
        self._timeout = request_timeout_seconds
        self._cache: TtlCache[tuple[_Identity, ResourceAccess], bool] = TtlCache(
            max_entries=max_cached, clock=clock or SystemClock()
        )

    def allowed(self, caller: Caller, access: ResourceAccess) -> bool:
        """See `AccessReviewer.allowed`."""
        key = (_cache_identity(caller), access)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        allowed = self._review(caller, access)
        self._cache.put(key, allowed, ttl_seconds=self._ttls[allowed])
        return allowed

    def _review(self, caller: Caller, access: ResourceAccess) -> bool:
        try:
            response = self._api.create(
                resources.SUBJECT_ACCESS_REVIEWS, _review_body(caller, access), timeout=self._timeout
            )
        except kube_errors.KubeError as failure:
            raise ReviewUnavailable(
                "cannot check permissions right now; retry later", detail=f"SubjectAccessReview failed: {failure}"
            ) from failure
        status = response.get("status") or {}
        allowed = bool(status.get("allowed") and not status.get("denied"))
        if not allowed:
            log.info("%s may not %s: %s", caller.username, access.describe(), status.get("reason") or "no rule")
        return allowed


def _review_body(caller: Caller, access: ResourceAccess) -> dict[str, Any]:
    attributes = {
        "verb": access.verb,
        "group": access.group,
        "resource": access.resource,
        "namespace": access.namespace or None,
        "name": access.name or None,
        "subresource": access.subresource or None,
    }
    spec = {
        "user": caller.username,
        "uid": caller.uid or None,
        "groups": list(caller.groups),
        "extra": {key: list(values) for key, values in caller.extra.items()},
        "resourceAttributes": {key: value for key, value in attributes.items() if value is not None},
    }
    return {
        "apiVersion": resources.SUBJECT_ACCESS_REVIEWS.api_version,
        "kind": resources.SUBJECT_ACCESS_REVIEWS.kind,
        "spec": {key: value for key, value in spec.items() if value is not None},
    }


def _cache_identity(caller: Caller) -> _Identity:
    """What authorization depends on, as a hashable key (the audiences and parsed fields add nothing)."""
    return caller.username, caller.uid, caller.groups, tuple(sorted(caller.extra.items()))
