"""Which callers each gRPC method admits: design §2 "Who may call what", as data.

A service declares one rule per method ("/prepull.v1.Credentials/GetPullCredentials") or per service
("prepull.v1.Jobs", for all its methods; a method rule wins over its service's rule):

    PolicyTable({
        "/prepull.v1.Credentials/GetPullCredentials": MethodPolicy(
            audience="prepull.io/credentials", usernames=frozenset({puller_sa}), require_node_binding=True),
        "prepull.v1.Jobs": MethodPolicy(audience="prepull.io/jobs"),   # + SubjectAccessReview in the servicer
    })

Health and reflection are always public. A method with no rule is refused (PERMISSION_DENIED) and logged: a
new RPC added without deciding who may call it must fail closed, not open.

Checks that need the request (the namespace of a job to create) cannot live here; the servicer makes them with
`subjectaccess.require(...)` on `caller.current_caller()`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from services.shared.auth.caller import Caller
from services.shared.auth.errors import PermissionDenied
from services.shared.auth.subjectaccess import ResourceAccess
from services.shared.rpc import handlers


@dataclass(frozen=True)
class Public:
    """No authentication at all (health, reflection, or a method deliberately open to anyone)."""


PUBLIC = Public()


@dataclass(frozen=True)
class MethodPolicy:
    """A method needs a token for `audience`, and optionally a particular caller and RBAC permission."""

    audience: str
    """The token must be issued for this audience (checked by TokenReview)."""
    usernames: frozenset[str] = frozenset()
    """When not empty, only these usernames are admitted (e.g. the puller's ServiceAccount)."""
    require_node_binding: bool = False
    """Admit only tokens bound to a Pod on a Node (a DaemonSet Pod's token names its node)."""
    access: ResourceAccess | None = None
    """A Kubernetes action the caller must be allowed (checked by SubjectAccessReview)."""

    def check_identity(self, caller: Caller) -> None:
        """Raise `PermissionDenied` if `caller` is not one this method admits (before any RBAC check)."""
        if self.usernames and caller.username not in self.usernames:
            raise PermissionDenied(f"{caller.username} may not call this method")
        if self.require_node_binding and not caller.bound_to_node:
            raise PermissionDenied("this method needs a token bound to a Pod running on a Node")


Rule = MethodPolicy | Public


class PolicyTable:
    """Finds the rule for a full method name; see the module docstring for the lookup order."""

    def __init__(self, rules: Mapping[str, Rule]) -> None:
        """Check the keys are "/package.Service/Method" or "package.Service" and keep a copy."""
        for key in rules:
            if not _valid_key(key):
                raise ValueError(f'invalid policy key {key!r}: use "/package.Service/Method" or "package.Service"')
        self._rules = dict(rules)

    @property
    def needs_access_review(self) -> bool:
        """True when some rule names a Kubernetes action (so a SubjectAccessReview reviewer is required)."""
        return any(isinstance(rule, MethodPolicy) and rule.access is not None for rule in self._rules.values())

    def rule_for(self, method: str) -> Rule | None:
        """The rule for `method` ("/pkg.Service/Method"); PUBLIC for health and reflection; None when unknown."""
        if handlers.is_stock(method):
            return PUBLIC
        return self._rules.get(method) or self._rules.get(handlers.service_of(method))


def _valid_key(key: str) -> bool:
    if key.startswith("/"):
        service, separator, name = key[1:].partition("/")
        return bool(service and separator and name and "/" not in name)
    return bool(key) and "/" not in key
