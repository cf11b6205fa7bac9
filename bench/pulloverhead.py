"""Issue 9 items 5 and 7 (puller): pull overhead on real containerd, and the registry bandwidth achieved.

One local cluster node (real containerd, the local open registry). Two sets of the same shape (count x size,
4 uncompressed layers, different content so neither run finds the other's blobs):

- direct: CRI `PullImage` on the node's containerd socket from 4 threads (the puller's default worker count);
- puller: the three services as processes (`localcluster.system`), the images added to the node's NodeImage
  spec in one merge patch, timed until every tag reports Succeeded in the NodeImage status (so the puller's
  watch, worker pool and status writes are inside the measurement);
- skopeo: `skopeo copy` of the direct set to directories, 4 at a time: the registry bandwidth a plain client gets.
"""

from __future__ import annotations

import datetime
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import kubernetes.client

from bench import procstats
from bench.report import Section, Table
from localcluster.cluster import LocalCluster
from localcluster.images import ImageBuilder, ImageRecipe, PushedImage, push
from localcluster.process import wait_until
from localcluster.system import PrepullSystem
from services.shared.api import timefmt
from services.shared.gen.cri import api_pb2, api_pb2_grpc

TITLE = "Pull overhead on real containerd"
GROUP, VERSION = "prepull.io", "v1beta1"
CONCURRENCY = 4
LAYERS = 4
IDLE_SETTLE_SECONDS = 10.0


@dataclass(frozen=True)
class Shape:
    images: int
    megabytes: int


QUICK = Shape(images=5, megabytes=5)
FULL = Shape(images=20, megabytes=20)


@dataclass(frozen=True)
class Timing:
    seconds: float
    total_bytes: int

    @property
    def mib_per_second(self) -> float:
        return self.total_bytes / 2**20 / self.seconds


def build_set(builder: ImageBuilder, registry: Any, shape: Shape, label: str) -> list[PushedImage]:
    """`shape.images` images of `shape.megabytes` MiB each in `LAYERS` layers, pushed to `registry`."""
    pushed = []
    for index in range(shape.images):
        name = f"bench/{label}-{index:02d}"
        recipe = ImageRecipe(name=name, total_bytes=shape.megabytes << 20, layers=LAYERS, seed=f"{label}-{index}")
        pushed.append(push(builder.build(recipe), registry, name, "v1"))
    return pushed


def total_bytes(images: Sequence[PushedImage]) -> int:
    return sum(image.image.blob_bytes for image in images)


def pull_direct(socket: Path, images: Sequence[PushedImage]) -> tuple[Timing, float]:
    """CRI PullImage of every image, `CONCURRENCY` at a time, on one channel; also the mean time of one pull."""
    with grpc.insecure_channel(f"unix://{socket}") as channel:
        stub = api_pb2_grpc.ImageServiceStub(channel)

        def pull(image: PushedImage) -> float:
            request = api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=image.reference))
            began = time.monotonic()
            stub.PullImage(request, timeout=600)
            return time.monotonic() - began

        started = time.monotonic()
        with futures.ThreadPoolExecutor(CONCURRENCY) as pool:
            durations = list(pool.map(pull, images))
        return Timing(time.monotonic() - started, total_bytes(images)), sum(durations) / len(durations)


def pull_through_puller(
    api: kubernetes.client.ApiClient, node: str, images: Sequence[PushedImage]
) -> tuple[Timing, Recorded]:
    """Add every image to the node's NodeImage spec at once; time until all tags are Succeeded in its status.

    Also returns the seconds from the patch to the latest tag `completionTime` the puller recorded: the pulls
    alone, without the delay of the (rate-limited) status write that reports them.
    """
    custom = kubernetes.client.CustomObjectsApi(api)
    tags = {
        image.reference.rsplit(":", 1)[0]: {"tags": [{"tag": "v1", "pullPolicy": {"ttlSecondsAfterFinished": 3600}}]}
        for image in images
    }
    started, patched_at = time.monotonic(), datetime.datetime.now(datetime.UTC)
    custom.patch_cluster_custom_object(GROUP, VERSION, "nodeimages", node, {"spec": {"images": tags}})

    def all_succeeded() -> bool:
        status = custom.get_cluster_custom_object(GROUP, VERSION, "nodeimages", node).get("status") or {}
        found = status.get("imageStatuses") or {}
        phases = [tag.get("phase") for name in tags for tag in (found.get(name) or {}).get("tags", [])]
        if "Failed" in phases:
            raise RuntimeError(f"a pull failed: {found}")
        return phases.count("Succeeded") == len(tags)

    wait_until(all_succeeded, timeout=900, interval=0.2, what="every tag Succeeded")
    timing = Timing(time.monotonic() - started, total_bytes(images))
    status = custom.get_cluster_custom_object(GROUP, VERSION, "nodeimages", node)["status"]["imageStatuses"]
    spans = [
        (timefmt.parse_time(tag["startTime"]), timefmt.parse_time(tag["completionTime"]))
        for name in tags
        for tag in status[name]["tags"]
    ]
    recorded = Recorded(
        last_completion=(max(end for _, end in spans) - patched_at).total_seconds(),
        mean_pull=sum((end - start).total_seconds() for start, end in spans) / len(spans),
        max_overlap=max(sum(1 for s, e in spans if s <= start < e) for start, _ in spans),
    )
    return timing, recorded


def skopeo_copy(images: Sequence[PushedImage], target: Path) -> Timing:
    """`skopeo copy` of every image into its own directory, `CONCURRENCY` at a time."""

    def copy(image: PushedImage) -> None:
        destination = target / image.repository.replace("/", "_")
        command = ["skopeo", "copy", "--quiet", "--src-tls-verify=false"]
        subprocess.run([*command, f"docker://{image.reference}", f"dir:{destination}"], check=True)

    started = time.monotonic()
    with futures.ThreadPoolExecutor(CONCURRENCY) as pool:
        list(pool.map(copy, images))
    return Timing(time.monotonic() - started, total_bytes(images))


@dataclass(frozen=True)
class Recorded:
    """What the puller wrote into the tags' status: when the last pull ended, pull durations, concurrency."""

    last_completion: float
    """Seconds from the spec patch to the latest `completionTime`."""
    mean_pull: float
    """Mean `completionTime - startTime` over the tags."""
    max_overlap: int
    """Most tags whose [startTime, completionTime) intervals overlap: the concurrency the puller achieved."""


@dataclass
class Measured:
    direct: Timing
    puller: Timing
    skopeo: Timing
    idle_rss: int
    peak_rss: int
    puller_recorded: Recorded
    direct_mean: float


def measure(work: Path, shape: Shape) -> Measured:
    local = LocalCluster(work / "pulloverhead", node_count=1)
    system: PrepullSystem | None = None
    try:
        local.start()
        builder = ImageBuilder(work / "images")
        direct_set = build_set(builder, local.open_registry, shape, "direct")
        puller_set = build_set(builder, local.open_registry, shape, "puller")
        node = next(iter(local.nodes.values()))
        direct, direct_mean = pull_direct(node.runtime.socket, direct_set)
        with tempfile.TemporaryDirectory(prefix="skopeo-", dir=work) as target:
            skopeo = skopeo_copy(direct_set, Path(target))
        system = PrepullSystem(local.describe(), extra_flags={"nodeimage_sync": ["--creation-delay", "1s"]})
        system.install()
        system.start()
        custom = kubernetes.client.CustomObjectsApi(local.api_client())
        wait_until(
            lambda: bool(custom.list_cluster_custom_object(GROUP, VERSION, "nodeimages").get("items")),
            timeout=60,
            what="the node's NodeImage",
        )
        puller, recorded = pull_through_puller(local.api_client(), node.name, puller_set)
        pid = system.services[f"puller-{node.name}"].process.pid
        assert pid is not None
        threading.Event().wait(IDLE_SETTLE_SECONDS)
        usage = procstats.usage(pid)
        return Measured(direct, puller, skopeo, usage.rss_bytes, usage.peak_rss_bytes, recorded, direct_mean)
    finally:
        if system is not None:
            system.stop()
        local.stop()


def section(work: Path, shape: Shape, mode: str) -> Section:
    result = measure(work, shape)
    out = Section(TITLE, mode)
    out.add(
        f"{shape.images} images x {shape.megabytes} MiB ({LAYERS} uncompressed layers) from the local registry to "
        f"one containerd node, {CONCURRENCY} at a time. Puller: time from the NodeImage spec patch until every tag "
        "is Succeeded in its status (watch, worker pool and rate-limited status writes included). Each run pulls "
        "its own set of images, so no run finds another's blobs in containerd's content store."
    )
    table = Table(["measurement", "result", "target"])
    ratio = result.puller.seconds / result.direct.seconds
    table.add(
        "direct CRI PullImage, 4 concurrent (mean time of one pull)",
        f"{result.direct.seconds:.2f} s ({result.direct_mean:.2f} s)",
        "",
    )
    table.add("through the puller (4 workers), end to end", f"{result.puller.seconds:.2f} s", "")
    table.add("ratio puller / direct", f"{ratio:.2f}x", "≤ 1.10x")
    table.add(
        "through the puller, patch → last tag `completionTime` the puller recorded (status-write delay excluded)",
        f"{result.puller_recorded.last_completion:.2f} s",
        "",
    )
    table.add(
        "through the puller: mean tag pull time (startTime → completionTime), most tags pulling at once",
        f"{result.puller_recorded.mean_pull:.2f} s, {result.puller_recorded.max_overlap}",
        "",
    )
    table.add("`skopeo copy` to directories, 4 concurrent", f"{result.skopeo.seconds:.2f} s", "")
    table.add("registry bandwidth: direct CRI", f"{result.direct.mib_per_second:.0f} MiB/s", "")
    table.add("registry bandwidth: through the puller", f"{result.puller.mib_per_second:.0f} MiB/s", "")
    table.add("registry bandwidth: skopeo copy", f"{result.skopeo.mib_per_second:.0f} MiB/s", "")
    table.add(f"puller RSS, idle {IDLE_SETTLE_SECONDS:.0f} s after the pulls", procstats.mib(result.idle_rss), "")
    table.add("puller peak RSS", procstats.mib(result.peak_rss), "")
    out.add(table)
    return out
