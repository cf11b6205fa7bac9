"""The floor of a fan-out: only its essential API writes, issued as fast as the apiserver takes them.

Per node, one NodeImage spec write (the tag the scheduler adds) and one status write (the puller's Succeeded),
with the same client library (`kubernetes`), by a pool of concurrent workers; the fastest pool size tried wins.
Nothing else runs: no services, no watches of ours.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent import futures
from dataclasses import dataclass

import kubernetes.client

GROUP, VERSION = "prepull.io", "v1beta1"
WORKER_COUNTS = (8, 32)
"""Pool sizes tried; the caller's client needs a connection pool of at least the largest."""


@dataclass(frozen=True)
class FloorResult:
    seconds: float
    workers: int


def essential_writes(api: kubernetes.client.ApiClient, node: str, image: str) -> None:
    """The spec write and the status write one node's fan-out needs, as merge patches."""
    custom = kubernetes.client.CustomObjectsApi(api)
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    spec = {
        "spec": {
            "images": {
                image: {
                    "tags": [
                        {"tag": "1", "version": 0, "createdAt": now, "pullPolicy": {"ttlSecondsAfterFinished": 300}}
                    ]
                }
            }
        }
    }
    custom.patch_cluster_custom_object(GROUP, VERSION, "nodeimages", node, spec)
    tag_status = {"tag": "1", "phase": "Succeeded", "version": 0, "startTime": now, "completionTime": now}
    status = {"status": {"desired": 1, "succeeded": 1, "imageStatuses": {image: {"tags": [tag_status]}}}}
    custom.patch_cluster_custom_object_status(GROUP, VERSION, "nodeimages", node, status)


def floor_seconds(api: kubernetes.client.ApiClient, nodes: Sequence[str], *, trial: str) -> FloorResult:
    """The fastest time, over the pool sizes tried, to do every node's essential writes (a new image per try)."""
    best: FloorResult | None = None
    for workers in WORKER_COUNTS:
        image = f"bench.local/floor-{trial}-w{workers}/app"
        started = time.monotonic()
        with futures.ThreadPoolExecutor(workers) as pool:
            list(pool.map(essential_writes, [api] * len(nodes), nodes, [image] * len(nodes)))
        result = FloorResult(seconds=time.monotonic() - started, workers=workers)
        if best is None or result.seconds < best.seconds:
            best = result
    assert best is not None
    return best
