"""Issue 9 items 5 and 7 (puller): pull overhead on real containerd, and the registry bandwidth achieved.

One local cluster node (real containerd, the local open registry), the three services running as processes
(`localcluster.system`) throughout. Sets of the same shape (count x size, 4 uncompressed layers, different
content so no set finds another's blobs), pulled in rounds:

- direct: CRI `PullImage` on the node's containerd socket from 4 threads (the puller's default worker count);
- puller: the images added to the node's NodeImage spec in one merge patch, timed until a watch sees every tag
  Succeeded in the NodeImage status (so the puller's watch, worker pool and status writes are inside the
  measurement);
- skopeo: `skopeo copy` of one set to directories, 4 at a time: the registry bandwidth a plain client gets.

Fair comparison on a shared 2-core machine: every round pulls one direct and one puller set, the side that
goes first alternates (an even number of rounds), and each set's images are removed from containerd after its
phase, since containerd's cost per pull grows with what its store holds. CPU seconds per process during each
phase show where the machine's time went.
"""

from __future__ import annotations

import datetime
import os
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import kubernetes.client
import kubernetes.watch

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
WAIT_SECONDS = 900


@dataclass(frozen=True)
class Shape:
    images: int
    megabytes: int
    rounds: int


QUICK = Shape(images=5, megabytes=5, rounds=2)
FULL = Shape(images=20, megabytes=20, rounds=4)


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
    status = wait_all_succeeded(custom, node, list(tags))
    timing = Timing(time.monotonic() - started, total_bytes(images))
    spans = [
        (timefmt.parse_time(tag["startTime"]), timefmt.parse_time(tag["completionTime"]))
        for name in tags
        for tag in status[name]["tags"]
    ]
    recorded = Recorded(
        first_start=(min(start for start, _ in spans) - patched_at).total_seconds(),
        last_completion=(max(end for _, end in spans) - patched_at).total_seconds(),
        mean_pull=sum((end - start).total_seconds() for start, end in spans) / len(spans),
        max_overlap=max(sum(1 for s, e in spans if s <= start < e) for start, _ in spans),
    )
    return timing, recorded


def wait_all_succeeded(custom: kubernetes.client.CustomObjectsApi, node: str, names: Sequence[str]) -> dict[str, Any]:
    """Watch the node's NodeImage until every tag of `names` is Succeeded; its `imageStatuses` then.

    A watch, not polling: the measurement must not load the apiserver the puller writes to, and it sees the
    final status write the moment it lands. The watch starts with the object as it is, so nothing is missed.
    """
    watch = kubernetes.watch.Watch()
    stream = watch.stream(
        custom.list_cluster_custom_object,
        GROUP,
        VERSION,
        "nodeimages",
        field_selector=f"metadata.name={node}",
        timeout_seconds=WAIT_SECONDS,
    )
    try:
        for event in stream:
            found = (event["object"].get("status") or {}).get("imageStatuses") or {}
            phases = [tag.get("phase") for name in names for tag in (found.get(name) or {}).get("tags", [])]
            if "Failed" in phases:
                raise RuntimeError(f"a pull failed: {found}")
            if phases.count("Succeeded") == len(names):
                return dict(found)
    finally:
        watch.stop()
    raise TimeoutError(f"not every tag Succeeded within {WAIT_SECONDS} s")


def remove_images(socket: Path, images: Sequence[PushedImage]) -> None:
    """CRI RemoveImage of every image, so the next phase starts from the same content store.

    containerd's cost per pull grows with what its store holds; without this, whatever runs later pays more.
    """
    with grpc.insecure_channel(f"unix://{socket}") as channel:
        stub = api_pb2_grpc.ImageServiceStub(channel)
        for image in images:
            stub.RemoveImage(api_pb2.RemoveImageRequest(image=api_pb2.ImageSpec(image=image.reference)), timeout=60)


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

    first_start: float
    """Seconds from the spec patch to the earliest `startTime`: how long the puller took to start pulling."""
    last_completion: float
    """Seconds from the spec patch to the latest `completionTime`."""
    mean_pull: float
    """Mean `completionTime - startTime` over the tags."""
    max_overlap: int
    """Most tags whose [startTime, completionTime) intervals overlap: the concurrency the puller achieved."""


class CpuMeter:
    """CPU seconds each group of processes (containerd, the puller, the control plane, …) used during a phase.

    On a 2-core machine the runtime competes with everything else for CPU: a pull path that is slow although
    its calls are the same shows up here as CPU taken by some other process while containerd works.
    """

    def __init__(self, groups: Mapping[str, Sequence[int]]) -> None:
        self._groups = {name: list(pids) for name, pids in groups.items() if pids}
        self._start = self._read()

    def used(self) -> dict[str, float]:
        """CPU seconds per group since the meter was made."""
        now = self._read()
        return {name: now[name] - self._start[name] for name in self._groups}

    def _read(self) -> dict[str, float]:
        return {name: procstats.usage_of(pids).cpu_seconds for name, pids in self._groups.items()}


def cluster_groups(local: LocalCluster) -> dict[str, list[int]]:
    """The local cluster's processes by role, plus this benchmark's own process (the direct client, the poller)."""
    node = next(iter(local.nodes.values()))
    control = local.describe()["control_plane"]["pids"]
    return {
        "containerd": [pid for pid in [node.runtime.process.pid] if pid is not None],
        "registry": [pid for pid in [local.open_registry.process.pid] if pid is not None],
        **{name: [int(pid)] for name, pid in control.items()},
        "benchmark client": [os.getpid()],
    }


def system_groups(local: LocalCluster, system: PrepullSystem) -> dict[str, list[int]]:
    """`cluster_groups` plus the puller and the two other services."""
    groups = cluster_groups(local)
    pullers = [s.process.pid for name, s in system.services.items() if name.startswith("puller-")]
    others = [s.process.pid for name, s in system.services.items() if not name.startswith("puller-")]
    groups["puller"] = [pid for pid in pullers if pid is not None]
    groups["scheduler + nodeimage-sync"] = [pid for pid in others if pid is not None]
    return groups


@dataclass(frozen=True)
class Round:
    """One round: a direct set and a puller set of the same shape, pulled one after the other."""

    direct: Timing
    direct_mean: float
    direct_cpu: dict[str, float]
    puller: Timing
    recorded: Recorded
    puller_cpu: dict[str, float]

    @property
    def ratio(self) -> float:
        return self.puller.seconds / self.direct.seconds


@dataclass
class Measured:
    rounds: list[Round]
    skopeo: Timing
    idle_rss: int
    peak_rss: int


def measure(work: Path, shape: Shape) -> Measured:
    """Start the cluster and the system once, then pull round after round, alternating which side goes first.

    The system runs during the direct pulls too, and the order alternates, so neither side is favoured by what
    the other one left behind (a warmer runtime, a busier machine): the machine is shared and its load drifts.
    """
    local = LocalCluster(work / "pulloverhead", node_count=1)
    system: PrepullSystem | None = None
    try:
        local.start()
        builder = ImageBuilder(work / "images")
        sets = [
            (
                build_set(builder, local.open_registry, shape, f"direct{index}"),
                build_set(builder, local.open_registry, shape, f"puller{index}"),
            )
            for index in range(shape.rounds)
        ]
        node = next(iter(local.nodes.values()))
        with tempfile.TemporaryDirectory(prefix="skopeo-", dir=work) as target:
            skopeo = skopeo_copy(sets[0][0], Path(target))
        system = PrepullSystem(local.describe(), extra_flags={"nodeimage_sync": ["--creation-delay", "1s"]})
        system.install()
        system.start()
        custom = kubernetes.client.CustomObjectsApi(local.api_client())
        wait_until(
            lambda: bool(custom.list_cluster_custom_object(GROUP, VERSION, "nodeimages").get("items")),
            timeout=60,
            what="the node's NodeImage",
        )
        groups = system_groups(local, system)
        rounds = [
            one_round(
                local,
                direct_set,
                puller_set,
                node=node.name,
                socket=node.runtime.socket,
                groups=groups,
                puller_first=index % 2 == 1,
            )
            for index, (direct_set, puller_set) in enumerate(sets)
        ]
        pid = system.services[f"puller-{node.name}"].process.pid
        assert pid is not None
        threading.Event().wait(IDLE_SETTLE_SECONDS)
        usage = procstats.usage(pid)
        return Measured(rounds, skopeo, usage.rss_bytes, usage.peak_rss_bytes)
    finally:
        if system is not None:
            system.stop()
        local.stop()


def one_round(
    local: LocalCluster,
    direct_set: Sequence[PushedImage],
    puller_set: Sequence[PushedImage],
    *,
    node: str,
    socket: Path,
    groups: Mapping[str, Sequence[int]],
    puller_first: bool,
) -> Round:
    """Pull `direct_set` directly and `puller_set` through the puller, in the order asked; CPU per phase."""

    def direct() -> tuple[Timing, float, dict[str, float]]:
        meter = CpuMeter(groups)
        timing, mean = pull_direct(socket, direct_set)
        used = meter.used()
        remove_images(socket, direct_set)
        return timing, mean, used

    def puller() -> tuple[Timing, Recorded, dict[str, float]]:
        meter = CpuMeter(groups)
        timing, recorded = pull_through_puller(local.api_client(), node, puller_set)
        used = meter.used()
        forget(local.api_client(), node, puller_set)
        remove_images(socket, puller_set)
        return timing, recorded, used

    if puller_first:
        through, recorded, puller_cpu = puller()
        plain, mean, direct_cpu = direct()
    else:
        plain, mean, direct_cpu = direct()
        through, recorded, puller_cpu = puller()
    return Round(plain, mean, direct_cpu, through, recorded, puller_cpu)


def forget(api: kubernetes.client.ApiClient, node: str, images: Sequence[PushedImage]) -> None:
    """Take a round's images out of the NodeImage spec, so every round starts from the same spec size."""
    removed = {image.reference.rsplit(":", 1)[0]: None for image in images}
    kubernetes.client.CustomObjectsApi(api).patch_cluster_custom_object(
        GROUP, VERSION, "nodeimages", node, {"spec": {"images": removed}}
    )


def section(work: Path, shape: Shape, mode: str) -> Section:
    result = measure(work, shape)
    rounds = result.rounds
    out = Section(TITLE, mode)
    out.add(
        f"{shape.images} images x {shape.megabytes} MiB ({LAYERS} uncompressed layers) from the local registry to "
        f"one containerd node, {CONCURRENCY} at a time, in {shape.rounds} round(s). Each round pulls a direct set "
        "and a puller set of that shape, alternating which goes first, with the system running throughout. "
        "Puller: time from the NodeImage spec patch until every tag is Succeeded in its status (watch, worker "
        "pool and rate-limited status writes included; the benchmark watches, it does not poll). Every set is its "
        "own images, so no pull finds another's blobs, and its images are removed from containerd after its phase, "
        "so every phase starts from the same store. CPU seconds are summed over the rounds, per process."
    )
    table = Table(["measurement", "result", "target"])
    table.add(
        "direct CRI PullImage, 4 concurrent, per round (mean time of one pull)",
        per_round(rounds, lambda r: f"{r.direct.seconds:.2f} s ({r.direct_mean:.2f} s)"),
        "",
    )
    table.add(
        "through the puller (4 workers), end to end, per round",
        per_round(rounds, lambda r: f"{r.puller.seconds:.2f} s"),
        "",
    )
    table.add("ratio puller / direct, per round", per_round(rounds, lambda r: f"{r.ratio:.2f}x"), "")
    table.add(
        "ratio puller / direct, median of the rounds", f"{statistics.median(r.ratio for r in rounds):.2f}x", "≤ 1.10x"
    )
    table.add(
        "through the puller, patch → first tag `startTime` the puller recorded",
        per_round(rounds, lambda r: f"{r.recorded.first_start:.2f} s"),
        "",
    )
    table.add(
        "through the puller, patch → last tag `completionTime` the puller recorded (status-write delay excluded)",
        per_round(rounds, lambda r: f"{r.recorded.last_completion:.2f} s"),
        "",
    )
    table.add(
        "through the puller: mean tag pull time (startTime → completionTime), most tags pulling at once",
        per_round(rounds, lambda r: f"{r.recorded.mean_pull:.2f} s, {r.recorded.max_overlap}"),
        "",
    )
    table.add("`skopeo copy` to directories, 4 concurrent", f"{result.skopeo.seconds:.2f} s", "")
    table.add("registry bandwidth: direct CRI", per_round(rounds, lambda r: f"{r.direct.mib_per_second:.0f} MiB/s"), "")
    table.add(
        "registry bandwidth: through the puller",
        per_round(rounds, lambda r: f"{r.puller.mib_per_second:.0f} MiB/s"),
        "",
    )
    table.add("registry bandwidth: skopeo copy", f"{result.skopeo.mib_per_second:.0f} MiB/s", "")
    table.add("CPU seconds during the direct pulls", cpu_text(summed(r.direct_cpu for r in rounds)), "")
    table.add("CPU seconds during the pulls through the puller", cpu_text(summed(r.puller_cpu for r in rounds)), "")
    table.add(f"puller RSS, idle {IDLE_SETTLE_SECONDS:.0f} s after the pulls", procstats.mib(result.idle_rss), "")
    table.add("puller peak RSS", procstats.mib(result.peak_rss), "")
    out.add(table)
    return out


def per_round(rounds: Sequence[Round], text: Callable[[Round], str]) -> str:
    return "; ".join(text(r) for r in rounds)


def summed(phases: Iterable[Mapping[str, float]]) -> dict[str, float]:
    total: dict[str, float] = {}
    for used in phases:
        for name, seconds in used.items():
            total[name] = total.get(name, 0.0) + seconds
    return total


def cpu_text(used: Mapping[str, float]) -> str:
    return ", ".join(f"{name} {seconds:.1f}" for name, seconds in used.items())
