"""The vocabulary of object access: raw objects, list results, keys, and the `ObjectApi` seam.

Everything above this package's I/O (the informer, leader election, the event recorder, the services'
reconcilers) depends on `ObjectApi`, a Protocol with only the operations prepull uses, and never on the
client library. `kubeapi.KubeApi` is the production implementation; a test can hand the same code an
in-memory fake instead (style principle 12). Objects are plain dicts at this layer (decoded JSON); typed
views are built from them in `services.shared.api`.

Writes are JSON merge patches (RFC 7386), optionally with a resourceVersion precondition: the apiserver then
refuses the patch with 409 Conflict if the object changed since it was read, which is what
`patching.retry_on_conflict` builds on.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from services.shared.kube import watching
from services.shared.kube.resources import Resource

RawObject = dict[str, Any]
"""A Kubernetes object as decoded JSON; typed views live in `services.shared.api`."""


@dataclass(frozen=True)
class ObjectList:
    """The result of a list: every matching object, and the resourceVersion to start a watch from."""

    items: list[RawObject]
    resource_version: str


class ObjectApi(Protocol):
    """The operations on Kubernetes objects that prepull uses. All raise `errors.KubeError` subclasses.

    `namespace` is needed for namespaced resources and must be None for cluster-scoped ones (for `list` and
    `watch`, None on a namespaced resource means all namespaces). `timeout` overrides the read timeout of
    one request in seconds (leader election needs answers faster than the default).
    """

    def get(
        self, resource: Resource, name: str, *, namespace: str | None = None, timeout: float | None = None
    ) -> RawObject:
        """Read one object. Raises `errors.NotFound` when it does not exist."""
        ...

    def list(
        self,
        resource: Resource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        timeout: float | None = None,
    ) -> ObjectList:
        """Read every matching object (all pages) and the list's resourceVersion."""
        ...

    def list_pages(
        self,
        resource: Resource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        timeout: float | None = None,
        page_size: int | None = None,
    ) -> Iterator[ObjectList]:
        """The same list a page at a time (of `page_size` objects, or the client's default); every page carries
        the snapshot's resourceVersion."""
        ...

    def create(
        self, resource: Resource, body: Mapping[str, Any], *, namespace: str | None = None, timeout: float | None = None
    ) -> RawObject:
        """Create an object; returns it as stored. Raises `errors.AlreadyExists` for a taken name."""
        ...

    def patch(
        self,
        resource: Resource,
        name: str,
        patch: Mapping[str, Any],
        *,
        namespace: str | None = None,
        resource_version: str | None = None,
        timeout: float | None = None,
    ) -> RawObject:
        """Merge-patch an object (not its status); with `resource_version`, only if it is still that version."""
        ...

    def patch_status(
        self,
        resource: Resource,
        name: str,
        patch: Mapping[str, Any],
        *,
        namespace: str | None = None,
        resource_version: str | None = None,
        timeout: float | None = None,
    ) -> RawObject:
        """Merge-patch the status subresource; same precondition semantics as `patch`."""
        ...

    def delete(
        self,
        resource: Resource,
        name: str,
        *,
        namespace: str | None = None,
        uid: str | None = None,
        resource_version: str | None = None,
        propagation_policy: str | None = None,
        timeout: float | None = None,
    ) -> None:
        """Delete an object, only if it still has `uid`/`resource_version` when given (else `errors.Conflict`).

        `propagation_policy` is "Foreground", "Background" or "Orphan" (server default when None).
        """
        ...

    def watch(
        self,
        resource: Resource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        resource_version: str | None = None,
        timeout_seconds: int,
        allow_bookmarks: bool = True,
    ) -> watching.WatchStream:
        """Open a watch from `resource_version`; the server ends it after `timeout_seconds`."""
        ...


def object_key(obj: Mapping[str, Any]) -> str:
    """The cache and work-queue key of an object: "namespace/name", or "name" when cluster-scoped."""
    metadata = obj.get("metadata") or {}
    namespace = metadata.get("namespace")
    return f"{namespace}/{metadata['name']}" if namespace else str(metadata["name"])
