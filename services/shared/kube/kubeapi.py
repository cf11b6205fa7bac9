"""`KubeApi`: the production `objects.ObjectApi`, over the official client's `ApiClient`.

Deliberately thin: one generic request path over `ApiClient.call_api` serves our CRDs and the built-in kinds
alike. We skip the client's typed `CoreV1Api`/`CustomObjectsApi` methods because the former turn answers
into model classes (our API layer parses dicts, `services.shared.api`), the latter cannot address the core
group, and both would need a branch per kind. Every request carries the timeouts of `client.ClientSettings`,
so no call hangs on a dead connection, and every failure is raised as an `errors.KubeError`.
"""

from __future__ import annotations

import copy
import http.client
import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import kubernetes.client
import urllib3.exceptions
from kubernetes.client.exceptions import ApiException

from services.shared.kube import client, errors, objects, watching
from services.shared.kube.resources import Resource

RawObject = objects.RawObject

MERGE_PATCH = "application/merge-patch+json"
DEFAULT_PAGE_SIZE = 500
"""Objects per list page: big lists (thousands of NodeImages) come in pieces the apiserver serves cheaply."""

_CLIENT_FAILURES = (ApiException, urllib3.exceptions.HTTPError, http.client.HTTPException, OSError)


class KubeApi:
    """`objects.ObjectApi` over the official client's `ApiClient`; safe to share between threads."""

    def __init__(
        self,
        api_client: kubernetes.client.ApiClient,
        *,
        settings: client.ClientSettings | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> None:
        self._api_client = api_client
        self._settings = settings or client.ClientSettings()
        self._page_size = page_size

    def get(
        self, resource: Resource, name: str, *, namespace: str | None = None, timeout: float | None = None
    ) -> RawObject:
        """See `objects.ObjectApi.get`."""
        return _with_type(resource, self._call("GET", resource.path(namespace=namespace, name=name), timeout=timeout))

    def list(
        self,
        resource: Resource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        timeout: float | None = None,
    ) -> objects.ObjectList:
        """See `objects.ObjectApi.list`. Pages share one snapshot; an expired continue token raises `errors.Gone`."""
        items: list[RawObject] = []
        resource_version = ""
        for page in self.list_pages(
            resource,
            namespace=namespace,
            label_selector=label_selector,
            field_selector=field_selector,
            timeout=timeout,
        ):
            items.extend(page.items)
            resource_version = resource_version or page.resource_version
        return objects.ObjectList(items=items, resource_version=resource_version)

    def list_pages(
        self,
        resource: Resource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        timeout: float | None = None,
        page_size: int | None = None,
    ) -> Iterator[objects.ObjectList]:
        """One list, a page at a time, so a caller that keeps a compact form of each object never holds every
        object's full dict at once. Every page carries the snapshot's resourceVersion (the first page's).
        `page_size` overrides this client's for big objects."""
        path = resource.path(namespace=namespace)
        selectors = _selectors(label_selector, field_selector)
        resource_version = ""
        continue_token = ""
        while True:
            query = [*selectors, ("limit", str(page_size or self._page_size))]
            if continue_token:
                query.append(("continue", continue_token))
            page = self._call("GET", path, query=query, timeout=timeout)
            metadata = page.get("metadata") or {}
            resource_version = resource_version or str(metadata.get("resourceVersion") or "")
            continue_token = str(metadata.get("continue") or "")
            items = [_with_type(resource, item) for item in page.pop("items", None) or []]
            yield objects.ObjectList(items=items, resource_version=resource_version)
            del items  # a page's dicts are not kept alive while the next page is fetched
            if not continue_token:
                return

    def create(
        self, resource: Resource, body: Mapping[str, Any], *, namespace: str | None = None, timeout: float | None = None
    ) -> RawObject:
        """See `objects.ObjectApi.create`."""
        return _with_type(resource, self._call("POST", resource.path(namespace=namespace), body=body, timeout=timeout))

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
        """See `objects.ObjectApi.patch`."""
        path = resource.path(namespace=namespace, name=name)
        return self._merge_patch(resource, path, patch, resource_version=resource_version, timeout=timeout)

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
        """See `objects.ObjectApi.patch_status`."""
        path = resource.path(namespace=namespace, name=name, subresource="status")
        return self._merge_patch(resource, path, patch, resource_version=resource_version, timeout=timeout)

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
        """See `objects.ObjectApi.delete`."""
        options: RawObject = {"apiVersion": "v1", "kind": "DeleteOptions"}
        preconditions = {k: v for k, v in (("uid", uid), ("resourceVersion", resource_version)) if v}
        if preconditions:
            options["preconditions"] = preconditions
        if propagation_policy:
            options["propagationPolicy"] = propagation_policy
        self._call("DELETE", resource.path(namespace=namespace, name=name), body=options, timeout=timeout)

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
        """See `objects.ObjectApi.watch`. The read timeout is the server's timeout plus `watch_read_slack`."""
        query = [
            ("watch", "true"),
            ("timeoutSeconds", str(timeout_seconds)),
            *_selectors(label_selector, field_selector),
        ]
        if allow_bookmarks:
            query.append(("allowWatchBookmarks", "true"))
        if resource_version:
            query.append(("resourceVersion", resource_version))
        response = self._request(
            "GET",
            resource.path(namespace=namespace),
            query=query,
            read_timeout=timeout_seconds + self._settings.watch_read_slack,
        )
        return watching.WatchStream(response)

    def _merge_patch(
        self,
        resource: Resource,
        path: str,
        patch: Mapping[str, Any],
        *,
        resource_version: str | None,
        timeout: float | None,
    ) -> RawObject:
        body = copy.deepcopy(dict(patch))
        if resource_version:
            body.setdefault("metadata", {})["resourceVersion"] = resource_version
        return _with_type(resource, self._call("PATCH", path, body=body, content_type=MERGE_PATCH, timeout=timeout))

    def _call(
        self,
        method: str,
        path: str,
        *,
        query: Sequence[tuple[str, str]] = (),
        body: Mapping[str, Any] | None = None,
        content_type: str = "application/json",
        timeout: float | None = None,
    ) -> RawObject:
        """One request with a JSON answer, read completely."""
        response = self._request(method, path, query=query, body=body, content_type=content_type, read_timeout=timeout)
        try:
            data = response.data
        except _CLIENT_FAILURES as exc:
            raise errors.translate(exc) from exc
        return _decode_object(data)

    def _request(
        self,
        method: str,
        path: str,
        *,
        query: Sequence[tuple[str, str]] = (),
        body: Mapping[str, Any] | None = None,
        content_type: str = "application/json",
        read_timeout: float | None = None,
    ) -> Any:
        """Send a request and return the unread urllib3 response; failures become `errors.KubeError`."""
        timeouts = (self._settings.connect_timeout, read_timeout or self._settings.read_timeout)
        try:
            return self._api_client.call_api(
                path,
                method,
                query_params=list(query),
                header_params={"Accept": "application/json", "Content-Type": content_type},
                body=body,
                auth_settings=["BearerToken"],
                _preload_content=False,
                _return_http_data_only=True,
                _request_timeout=timeouts,
            )
        except _CLIENT_FAILURES as exc:
            raise errors.translate(exc) from exc


def _selectors(label_selector: str | None, field_selector: str | None) -> list[tuple[str, str]]:
    query = []
    if label_selector:
        query.append(("labelSelector", label_selector))
    if field_selector:
        query.append(("fieldSelector", field_selector))
    return query


def _with_type(resource: Resource, obj: RawObject) -> RawObject:
    """List items come without `apiVersion`/`kind`; add them so every object we hand out carries both."""
    if obj.get("kind") != "Status":
        obj.setdefault("apiVersion", resource.api_version)
        obj.setdefault("kind", resource.kind)
    return obj


def _decode_object(data: bytes | str | None) -> RawObject:
    if not data:
        return {}
    try:
        decoded = json.loads(data)
    except ValueError as exc:
        raise errors.ServerError(f"undecodable response: {data[:200]!r}") from exc
    if not isinstance(decoded, dict):
        raise errors.ServerError(f"expected a JSON object, got {type(decoded).__name__}")
    return decoded
