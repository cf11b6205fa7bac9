"""Server-side authentication and authorization of every gRPC call, before the servicer runs.

The client sends `authorization: Bearer <token>` metadata. For each call, `AuthInterceptor`:

1. finds the method's rule (`policy.PolicyTable`); public methods pass untouched, unknown ones are refused;
2. takes the bearer token (missing or malformed → UNAUTHENTICATED);
3. authenticates it for the rule's audience with TokenReview (invalid, expired, wrong audience →
   UNAUTHENTICATED; API server unreachable → UNAVAILABLE, which clients retry);
4. checks the caller's identity against the rule (username, node binding) and, if the rule names a Kubernetes
   action, asks SubjectAccessReview (refused → PERMISSION_DENIED);
5. runs the servicer with the caller bound (`caller.current_caller()`), and records the caller on the span.

All of this happens on the worker thread that runs the call (see `rpc.handlers` for why not in
`intercept_service`). Refusals are logged with method, peer and the API server's reason; the token never is.
Those lines are rate-limited per kind of refusal (`refusal_log`): an unauthenticated client can be refused as
often as it likes, but cannot write a log line per call.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterable, Iterator

import grpc
from opentelemetry import trace

from services.shared.auth import caller as caller_module
from services.shared.auth import metadata as auth_metadata
from services.shared.auth import refusal_log, subjectaccess
from services.shared.auth.caller import Caller
from services.shared.auth.errors import AuthError, PermissionDenied
from services.shared.auth.policy import MethodPolicy, PolicyTable, Public
from services.shared.auth.tokenreview import Authenticator
from services.shared.clock import Clock
from services.shared.rpc import handlers, status
from services.shared.telemetry import attributes

log = logging.getLogger(__name__)


class AuthInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]  # grpc ships no type stubs
    """Admits each call according to `policies`; see the module docstring.

    Args:
        policies: the rule per method or service.
        authenticator: TokenReview (normally `tokenreview.TokenReviewAuthenticator`).
        reviewer: SubjectAccessReview for rules with `access` (normally `subjectaccess.SubjectAccessReviewer`);
            may be None only when no rule names an action.
        refusal_log_interval_seconds: at most one log line per kind of refusal this often (0: every refusal).
        clock: monotonic time for that limit (injectable for tests).

    Raises:
        ValueError: a rule names an action but no reviewer is given (found at start-up, not at the first call).
    """

    def __init__(
        self,
        policies: PolicyTable,
        *,
        authenticator: Authenticator,
        reviewer: subjectaccess.AccessReviewer | None = None,
        refusal_log_interval_seconds: float = refusal_log.DEFAULT_INTERVAL_SECONDS,
        clock: Clock | None = None,
    ) -> None:
        """Keep the policy and the reviewers; no request is made yet."""
        if reviewer is None and policies.needs_access_review:
            raise ValueError("a method policy names a Kubernetes action, so a SubjectAccessReview reviewer is needed")
        self._policies = policies
        self._authenticator = authenticator
        self._reviewer = reviewer
        self.refusals = refusal_log.RefusalLog(log, interval_seconds=refusal_log_interval_seconds, clock=clock)
        self._unruled_warned: set[str] = set()
        """Registered methods without a rule, already warned about: a configuration bug is told once, not per call."""
        self._unruled_lock = threading.Lock()

    def intercept_service(
        self, continuation: handlers.Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        """Wrap every non-public method so admission runs on the call's worker thread."""
        handler = continuation(handler_call_details)
        method = handler_call_details.method
        rule = self._policies.rule_for(method)
        if isinstance(rule, Public):
            return handler
        return handlers.wrap(handler, lambda context: self._admitted(context, method, rule))

    @contextlib.contextmanager
    def _admitted(self, context: grpc.ServicerContext, method: str, rule: MethodPolicy | None) -> Iterator[None]:
        try:
            admitted = self.admit(context.invocation_metadata(), rule, method)
        except AuthError as error:
            self.refusals.refused(method, context.peer(), error)
            status.abort(context, error)
        _record_on_span(admitted)
        with caller_module.bound(admitted):
            yield

    def _warn_unruled(self, method: str) -> None:
        with self._unruled_lock:
            first = method not in self._unruled_warned
            self._unruled_warned.add(method)
        if first:
            log.warning("no access policy for %s; refusing every call to it (add a rule for it)", method)

    def admit(
        self, metadata: Iterable[tuple[str, str | bytes]] | None, rule: MethodPolicy | None, method: str
    ) -> Caller:
        """The caller, if the call's metadata satisfies `rule`; raises an `AuthError` otherwise."""
        if rule is None:
            self._warn_unruled(method)
            raise PermissionDenied(f"method {method} is not open to callers")
        caller = self._authenticator.authenticate(auth_metadata.bearer_token(metadata), rule.audience)
        rule.check_identity(caller)
        if rule.access is not None and self._reviewer is not None:  # __init__ ensures the reviewer is there
            subjectaccess.require(self._reviewer, caller, rule.access)
        return caller


def _record_on_span(caller: Caller) -> None:
    """Put who called (never how they proved it) on the server span the tracing interceptor opened."""
    span = trace.get_current_span()
    span.set_attribute(attributes.CALLER_USERNAME, caller.username)
    if caller.node_name:
        span.set_attribute(attributes.K8S_NODE_NAME, caller.node_name)
