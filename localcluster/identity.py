"""A real Kubernetes identity for each simulated node's puller, as a kubelet would give it.

On a real cluster the puller runs as a DaemonSet Pod: the kubelet asks the TokenRequest API for a token
bound to that Pod (and so to its Node) and rewrites the projected token file before it expires. No kubelet
runs here, so this module does the same by hand:

- the `prepull-puller` ServiceAccount in namespace `prepull-system`;
- per node, a placeholder Pod with `spec.nodeName` and `spec.serviceAccountName` set explicitly (bound,
  never run);
- per node and audience, a Pod-bound token written to
  `<state_dir>/nodes/<node>/tokens/<audience, "/" replaced by "_">/token` (mode 0600, replaced atomically),
  refreshed by a background thread at `refresh_fraction` (80%) of its lifetime.

The apiserver puts the node's name into such tokens only when the Node object exists when the token is
issued, so register the Node first (`nodes.register_node`, or `provision_node` here, which does both).
TokenReview then reports it in `user.extra["authentication.kubernetes.io/node-name"]`.

Token contents are never logged.
"""

from __future__ import annotations

import datetime
import logging
import os
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import kubernetes.client
from kubernetes.client.exceptions import ApiException

from localcluster import nodes

PULLER_NAMESPACE = "prepull-system"
PULLER_SERVICE_ACCOUNT = "prepull-puller"
CREDENTIALS_AUDIENCE = "prepull.io/credentials"
INVENTORY_AUDIENCE = "prepull.io/inventory"
AUDIENCES = (CREDENTIALS_AUDIENCE, INVENTORY_AUDIENCE)
NODE_NAME_EXTRA = "authentication.kubernetes.io/node-name"
POD_NAME_EXTRA = "authentication.kubernetes.io/pod-name"
# The kubelet's default projected-token lifetime; the apiserver refuses anything under 600 s.
DEFAULT_TOKEN_LIFETIME_SECONDS = 3600
DEFAULT_REFRESH_FRACTION = 0.8
# After a failed refresh (apiserver stopped by a fault test, say), try again soon; the old token stays.
RETRY_DELAY_SECONDS = 2.0
# Every API call of the refresher is bounded, so a hung apiserver cannot wedge the thread (or `stop()`).
REQUEST_TIMEOUT_SECONDS = 10.0
PLACEHOLDER_IMAGE = "registry.k8s.io/pause:3.10"
HTTP_NOT_FOUND = 404
HTTP_CONFLICT = 409

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IssuedToken:
    """One token from the TokenRequest API; `token` is kept out of repr so it never lands in a log."""

    audience: str
    token: str = field(repr=False)
    expires_at: datetime.datetime
    lifetime_seconds: float


def token_path(state_dir: Path, node: str, audience: str) -> Path:
    """Where the token of `node` for `audience` is written (the puller of that node reads it)."""
    return state_dir / "nodes" / node / "tokens" / audience.replace("/", "_") / "token"


def placeholder_pod_name(node: str) -> str:
    return f"{PULLER_SERVICE_ACCOUNT}-{node}"


def ensure_puller_service_account(api: kubernetes.client.ApiClient) -> None:
    """Create namespace `prepull-system` and ServiceAccount `prepull-puller` unless they exist."""
    core = kubernetes.client.CoreV1Api(api)
    _create_if_absent(lambda: core.create_namespace({"metadata": {"name": PULLER_NAMESPACE}}))
    _create_if_absent(
        lambda: core.create_namespaced_service_account(PULLER_NAMESPACE, {"metadata": {"name": PULLER_SERVICE_ACCOUNT}})
    )


def ensure_placeholder_pod(api: kubernetes.client.ApiClient, node: str) -> kubernetes.client.V1Pod:
    """The node's placeholder Pod (created when missing): bound to `node`, running as the puller SA."""
    core = kubernetes.client.CoreV1Api(api)
    name = placeholder_pod_name(node)
    try:
        pod: kubernetes.client.V1Pod = core.read_namespaced_pod(
            name, PULLER_NAMESPACE, _request_timeout=REQUEST_TIMEOUT_SECONDS
        )
        return pod
    except ApiException as error:
        if error.status != HTTP_NOT_FOUND:
            raise
    created: kubernetes.client.V1Pod = core.create_namespaced_pod(
        PULLER_NAMESPACE, placeholder_pod_manifest(node), _request_timeout=REQUEST_TIMEOUT_SECONDS
    )
    return created


def placeholder_pod_manifest(node: str) -> dict[str, object]:
    """A Pod that stands for the node's puller: never run (no kubelet), but bound, so tokens can be."""
    return {
        "metadata": {
            "name": placeholder_pod_name(node),
            "labels": {"app.kubernetes.io/name": PULLER_SERVICE_ACCOUNT, "prepull.io/node": node},
        },
        "spec": {
            "nodeName": node,
            "serviceAccountName": PULLER_SERVICE_ACCOUNT,
            "automountServiceAccountToken": False,
            "containers": [{"name": "puller", "image": PLACEHOLDER_IMAGE}],
        },
    }


def request_pod_token(
    api: kubernetes.client.ApiClient, *, pod: kubernetes.client.V1Pod, audience: str, expiration_seconds: int
) -> IssuedToken:
    """A token for the Pod's ServiceAccount, bound to that Pod (name and UID), for one audience."""
    spec = kubernetes.client.V1TokenRequestSpec(
        audiences=[audience],
        expiration_seconds=expiration_seconds,
        bound_object_ref=kubernetes.client.V1BoundObjectReference(
            api_version="v1", kind="Pod", name=pod.metadata.name, uid=pod.metadata.uid
        ),
    )
    requested_at = datetime.datetime.now(datetime.UTC)
    response = kubernetes.client.CoreV1Api(api).create_namespaced_service_account_token(
        pod.spec.service_account_name,
        pod.metadata.namespace,
        kubernetes.client.AuthenticationV1TokenRequest(spec=spec),
        _request_timeout=REQUEST_TIMEOUT_SECONDS,
    )
    expires_at: datetime.datetime = response.status.expiration_timestamp
    lifetime = (expires_at - requested_at).total_seconds()
    return IssuedToken(audience=audience, token=response.status.token, expires_at=expires_at, lifetime_seconds=lifetime)


def write_token_file(path: Path, token: str) -> None:
    """Replace the token file atomically (a reader sees the old or the new token, never half of one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".token-")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(token)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class NodeIdentity:
    """The puller identity of one node: placeholder Pod plus token files kept fresh by a thread.

    Args:
        api: an admin client (it creates the Pod and requests tokens).
        state_dir: the cluster's state directory; token files go under `nodes/<node>/tokens/`.
        node: the Node name; the Node object should exist (see module docstring).
        audiences: one token file per audience.
        expiration_seconds: requested token lifetime (the apiserver's minimum is 600).
        refresh_fraction: refresh when this fraction of the lifetime has passed; tests use a tiny one to
            see refreshes within seconds.
    """

    def __init__(
        self,
        api: kubernetes.client.ApiClient,
        *,
        state_dir: Path,
        node: str,
        audiences: Sequence[str] = AUDIENCES,
        expiration_seconds: int = DEFAULT_TOKEN_LIFETIME_SECONDS,
        refresh_fraction: float = DEFAULT_REFRESH_FRACTION,
    ) -> None:
        if not 0 < refresh_fraction < 1:
            raise ValueError("refresh_fraction must be between 0 and 1")
        self.api = api
        self.state_dir = state_dir
        self.node = node
        self.audiences = tuple(audiences)
        self.expiration_seconds = expiration_seconds
        self.refresh_fraction = refresh_fraction
        self.refreshes = 0
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def pod_name(self) -> str:
        return placeholder_pod_name(self.node)

    def token_file(self, audience: str) -> Path:
        return token_path(self.state_dir, self.node, audience)

    def token_files(self) -> Mapping[str, Path]:
        return {audience: self.token_file(audience) for audience in self.audiences}

    def token(self, audience: str) -> str:
        """The current token for `audience`, as the puller would read it."""
        return self.token_file(audience).read_text()

    def start(self) -> None:
        """Create SA and Pod, write every token file once (so they exist on return), then keep them fresh."""
        if self._thread is not None:
            return
        ensure_puller_service_account(self.api)
        delay = self.refresh()
        self._stopping.clear()
        self._thread = threading.Thread(
            target=self._refresh_forever, args=(delay,), name=f"token-refresher-{self.node}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop refreshing (the files stay, and stay valid until they expire)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def refresh(self) -> float:
        """Request a new token per audience and replace the files; return seconds until the next refresh."""
        pod = ensure_placeholder_pod(self.api, self.node)
        issued = [
            request_pod_token(self.api, pod=pod, audience=audience, expiration_seconds=self.expiration_seconds)
            for audience in self.audiences
        ]
        for token in issued:
            write_token_file(self.token_file(token.audience), token.token)
        self.refreshes += 1
        shortest = min(token.lifetime_seconds for token in issued)
        log.info("wrote %d token(s) for node %s, next refresh in %.0fs", len(issued), self.node, shortest)
        return max(shortest * self.refresh_fraction, 0.1)

    def _refresh_forever(self, delay: float) -> None:
        while not self._stopping.wait(timeout=delay):
            try:
                delay = self.refresh()
            except Exception as error:  # the thread must outlive apiserver restarts and fault tests
                log.warning("token refresh for node %s failed (%s); retrying", self.node, type(error).__name__)
                delay = RETRY_DELAY_SECONDS

    def __enter__(self) -> NodeIdentity:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def provision_node(
    api: kubernetes.client.ApiClient,
    *,
    state_dir: Path,
    node: str,
    labels: Mapping[str, str] | None = None,
    audiences: Sequence[str] = AUDIENCES,
    expiration_seconds: int = DEFAULT_TOKEN_LIFETIME_SECONDS,
    refresh_fraction: float = DEFAULT_REFRESH_FRACTION,
) -> NodeIdentity:
    """Register Node `node` (Ready, with `labels`) and start its puller identity; the caller stops it."""
    nodes.register_node(api, node, labels)
    identity = NodeIdentity(
        api,
        state_dir=state_dir,
        node=node,
        audiences=audiences,
        expiration_seconds=expiration_seconds,
        refresh_fraction=refresh_fraction,
    )
    identity.start()
    return identity


def _create_if_absent(create: Callable[[], object]) -> None:
    try:
        create()
    except ApiException as error:
        if error.status != HTTP_CONFLICT:
            raise
