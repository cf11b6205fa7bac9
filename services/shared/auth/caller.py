"""The authenticated caller of a gRPC method, as the API server described it, and how servicers get it.

A `Caller` is built from a TokenReview's `status.user`. For a token the kubelet issued to a Pod, the API server
adds the Pod and its Node to the user's `extra` (`authentication.kubernetes.io/pod-name`, `.../node-name`);
those are lifted into fields because the puller's authorization depends on them: a puller may ask only for
its own node's credentials and report only its own node's images (design §2, §3). They come from the signed
token, never from the request, so a puller cannot claim another node.

The authentication interceptor binds the caller to the call with a context variable: the servicer runs on the
same worker thread, inside the binding, and reads it with `current_caller()`. No parameter threading through
generated servicer signatures, and nothing global: each call sees only its own caller.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

NODE_NAME_EXTRA = "authentication.kubernetes.io/node-name"
NODE_UID_EXTRA = "authentication.kubernetes.io/node-uid"
POD_NAME_EXTRA = "authentication.kubernetes.io/pod-name"
POD_UID_EXTRA = "authentication.kubernetes.io/pod-uid"
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"


@dataclass(frozen=True)
class Caller:
    """Who made a call: the TokenReview's user, with the Pod/Node binding of a Pod-bound token parsed out."""

    username: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """All of `user.extra` as the API server returned it (SubjectAccessReview needs it back verbatim)."""
    audiences: tuple[str, ...] = ()
    """The audiences the API server confirmed this token is valid for."""
    node_name: str | None = None
    """The Node of the Pod the token is bound to; None for tokens not bound to a Pod on a Node."""
    node_uid: str | None = None
    pod_name: str | None = None
    pod_uid: str | None = None

    @property
    def service_account(self) -> tuple[str, str] | None:
        """`(namespace, name)` when the caller is a ServiceAccount, else None."""
        if not self.username.startswith(SERVICE_ACCOUNT_PREFIX):
            return None
        namespace, _, name = self.username.removeprefix(SERVICE_ACCOUNT_PREFIX).partition(":")
        return (namespace, name) if namespace and name else None

    @property
    def bound_to_node(self) -> bool:
        """True when the token is bound to a Pod that runs on a Node (what a DaemonSet Pod's token is)."""
        return bool(self.node_name and self.pod_name)

    @classmethod
    def from_user_info(
        cls,
        *,
        username: str,
        uid: str | None = None,
        groups: Sequence[str] | None = None,
        extra: Mapping[str, Sequence[str]] | None = None,
        audiences: Sequence[str] | None = None,
    ) -> Caller:
        """Build from TokenReview `status.user` fields (None where the API server left them out)."""
        frozen_extra = {key: tuple(values) for key, values in (extra or {}).items()}
        return cls(
            username=username,
            uid=uid or "",
            groups=tuple(groups or ()),
            extra=frozen_extra,
            audiences=tuple(audiences or ()),
            node_name=_single(frozen_extra, NODE_NAME_EXTRA),
            node_uid=_single(frozen_extra, NODE_UID_EXTRA),
            pod_name=_single(frozen_extra, POD_NAME_EXTRA),
            pod_uid=_single(frozen_extra, POD_UID_EXTRA),
        )


def _single(extra: Mapping[str, tuple[str, ...]], key: str) -> str | None:
    """The one value of `key`; None when absent, empty or ambiguous (the API server sets exactly one)."""
    values = extra.get(key, ())
    return values[0] if len(values) == 1 and values[0] else None


_CURRENT: contextvars.ContextVar[Caller | None] = contextvars.ContextVar("prepull_rpc_caller", default=None)


def current_caller() -> Caller:
    """The caller of the gRPC call being served on this thread.

    Raises:
        LookupError: no authenticated caller is bound (the method is public, or this is not a call).
    """
    caller = _CURRENT.get()
    if caller is None:
        raise LookupError("no authenticated caller: the method is public or this code does not serve a call")
    return caller


@contextlib.contextmanager
def bound(caller: Caller) -> Iterator[Caller]:
    """Make `caller` the `current_caller()` inside the block (the interceptor does this per call)."""
    token = _CURRENT.set(caller)
    try:
        yield caller
    finally:
        # A response generator closed from another thread cannot reset here; that thread never saw the binding.
        with contextlib.suppress(ValueError):
            _CURRENT.reset(token)
