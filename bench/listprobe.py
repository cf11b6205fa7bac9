"""How long the apiserver takes to serve the list request an informer of ours starts with.

The services' informers list NodeImages in pages (`limit` of `constants.NODE_IMAGE_LIST_PAGE_SIZE`, no
`resourceVersion`: a consistent read, which this apiserver serves from etcd) and give each page the client's
read timeout (30 s); the pullers do the same with a field selector on their own name. When one page takes
longer than that, the informer never syncs and the service never becomes ready. The probe times exactly that
request as the admin, and, for comparison, the same list from the apiserver's watch cache (`resourceVersion=0`,
which ignores `limit` and sends every object at once).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import kubernetes.client
import kubernetes.config
import urllib3.exceptions

from services.shared.api import constants
from services.shared.kube import client

GROUP, VERSION = "prepull.io", "v1beta1"
SERVICE_READ_TIMEOUT = client.ClientSettings().read_timeout
PAGE_SIZE = constants.NODE_IMAGE_LIST_PAGE_SIZE


@dataclass(frozen=True)
class ListTimes:
    """Seconds to receive one list page; None when it took longer than the probe waited (`limit`)."""

    from_etcd: float | None
    from_cache: float | None
    limit: float


def probe_client(kubeconfig: Path) -> kubernetes.client.ApiClient:
    """An admin client that does not retry: a timed-out probe must end at its limit, not at four times it."""
    config = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(config_file=str(kubeconfig), client_configuration=config)
    config.retries = False
    return kubernetes.client.ApiClient(config)


def page_seconds(
    api: kubernetes.client.ApiClient, *, field_selector: str = "", cached: bool = False, limit: float
) -> float | None:
    """Time to receive one NodeImage list page as an informer asks for it (`cached`: from the watch cache)."""
    custom = kubernetes.client.CustomObjectsApi(api)
    options: dict[str, object] = {"limit": PAGE_SIZE, "_preload_content": False, "_request_timeout": limit}
    if field_selector:
        options["field_selector"] = field_selector
    if cached:
        options["resource_version"] = "0"
    started = time.monotonic()
    try:
        response = custom.list_cluster_custom_object(GROUP, VERSION, "nodeimages", **options)
        response.data  # noqa: B018 -- reading the body is part of the cost
    except (urllib3.exceptions.ReadTimeoutError, urllib3.exceptions.MaxRetryError, TimeoutError):
        return None
    return time.monotonic() - started


def list_times(kubeconfig: Path, *, field_selector: str = "", limit: float) -> ListTimes:
    with probe_client(kubeconfig) as api:
        return ListTimes(
            from_etcd=page_seconds(api, field_selector=field_selector, limit=limit),
            from_cache=page_seconds(api, field_selector=field_selector, cached=True, limit=limit),
            limit=limit,
        )


def describe(times: ListTimes) -> str:
    """`12.3 s (watch cache: 0.8 s)`, or `more than 60 s (…)`."""

    def one(seconds: float | None) -> str:
        return f"{seconds:.1f} s" if seconds is not None else f"more than {times.limit:.0f} s"

    return f"{one(times.from_etcd)} (from the watch cache: {one(times.from_cache)})"
