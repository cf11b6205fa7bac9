"""Faults during real ImagePullJobs on three containerd nodes: nothing lost, nothing stuck, everything recovers.

Each round pushes a fresh image, serves it through a rate-limited fault proxy (so a pull takes a few seconds and
faults land mid-pull), starts a 3-node job and injects one fault at a moment drawn from the printed seed. After
the fault the job must finish with the right counts, no tag may stay Pulling, every node keeps exactly one
NodeImage with one entry for the tag, the registry saw no more requests than the retries allow, and every
service is alive and ready again with no manual step: a `Restarter` starts any exited process again, as the
kubelet would, and nothing else is touched. (nodeimage_sync exits by design when it loses its Lease, e.g. in an
apiserver outage longer than its renew deadline; the restarts are printed.)

A separate test deletes a node (with its puller and containerd) mid-job and adds another one, and checks the
counts upstream gives for that: the deleted node is no longer counted, the added one is.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes.client
import pytest

from localcluster.cluster import LocalCluster
from localcluster.faultproxy import FaultProxy
from localcluster.images import ImageBuilder
from localcluster.process import wait_until
from localcluster.system import PrepullSystem
from tests.support.node_churn import add_node_and_puller, remove_node_and_puller
from tests.support.restarter import Restarter
from tests.support.system_helpers import (
    GROUP,
    VERSION,
    RegistryAt,
    assert_all_services_healthy,
    create_job,
    custom,
    fresh_namespace,
    job_status,
    node_image_tags,
    push_small_image,
    running_system,
    wait_for_completion,
)

pytestmark = pytest.mark.integration

NODES = 3
IMAGE_BYTES = 3 * 2**20
PROXY_RATE = 1536 * 1024  # bytes/s per response: a pull takes a few seconds
BACKOFF_LIMIT = 6
JOB_TIMEOUT = 240.0
RECOVERY_TIMEOUT = 90.0
# A pull is at most: /v2/ ping, manifest HEAD and GET, config, two layers; with slack for redirects and retries
# containerd makes inside one attempt.
REQUESTS_PER_ATTEMPT = 10
LEASE_FLAGS = [
    *("--leader-elect-lease-duration", "6s"),
    *("--leader-elect-renew-deadline", "4s"),
    *("--leader-elect-retry-period", "1s"),
]
PULLER_FLAGS = ["--backoff-initial", "1s", "--backoff-max", "4s", "--resync-pulling", "1s"]


@dataclass
class ChaosBed:
    """The running system and the proxy every node pulls the test images through."""

    local: LocalCluster
    services: PrepullSystem
    proxy: FaultProxy
    builder: ImageBuilder
    restarter: Restarter


@pytest.fixture(scope="module")
def bed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChaosBed]:
    flags = {
        "scheduler": LEASE_FLAGS,
        "nodeimage_sync": [*LEASE_FLAGS, "--creation-delay", "1s"],
        "puller": PULLER_FLAGS,
    }
    with running_system(Path(tmp_path_factory.mktemp("chaos")), node_count=NODES, extra_flags=flags) as (local, s):
        proxy = FaultProxy(local.open_registry.address)
        proxy.start()
        for node in local.nodes.values():
            node.runtime.trust_registry(proxy.address)
        restarter = Restarter(s)
        restarter.start()
        try:
            yield ChaosBed(local, s, proxy, ImageBuilder(Path(tmp_path_factory.mktemp("chaos-images"))), restarter)
        finally:
            print(f"service restarts by the kubelet stand-in: {dict(restarter.restarts)}")
            restarter.stop()
            proxy.stop()


Fault = Callable[[ChaosBed, random.Random], int]
"""Injects one fault (drawing its timing from the generator); returns how many pull attempts it may have cost."""


def kill_and_restart(name_of: Callable[[ChaosBed, random.Random], str]) -> Fault:
    def inject(bed: ChaosBed, rng: random.Random) -> int:
        service = bed.services.services[name_of(bed, rng)]
        with bed.restarter.paused():
            service.process.stop(kill=True)
            time.sleep(rng.uniform(0.2, 2.0))
            service.process.start()
        return 1

    return inject


def registry_errors(bed: ChaosBed, rng: random.Random) -> int:
    bed.proxy.fail_with(rng.choice([500, 502, 503]))
    time.sleep(rng.uniform(2.0, 5.0))
    bed.proxy.limit_rate(PROXY_RATE)
    return BACKOFF_LIMIT


def containerd_restart(bed: ChaosBed, rng: random.Random) -> int:
    node = bed.local.nodes[rng.choice(sorted(bed.local.nodes))]
    node.runtime.restart()
    return 1


def apiserver_outage(bed: ChaosBed, rng: random.Random) -> int:
    plane = bed.local.control_plane
    plane.stop_apiserver(kill=rng.random() < 0.5)
    time.sleep(20.0 if rng.random() < 0.5 else 10.0)
    plane.start_apiserver()
    return 1


def control_plane_outage(bed: ChaosBed, rng: random.Random) -> int:
    """apiserver and etcd both down (etcd killed or stopped), then etcd and the apiserver started again."""
    plane = bed.local.control_plane
    plane.stop_apiserver(kill=rng.random() < 0.5)
    plane.stop_etcd(kill=rng.random() < 0.5)
    time.sleep(20.0 if rng.random() < 0.5 else 10.0)
    plane.start_etcd()
    plane.start_apiserver()
    return 1


FAULTS: dict[str, Fault] = {
    "kill-scheduler": kill_and_restart(lambda bed, rng: "scheduler"),
    "kill-nodeimage-sync": kill_and_restart(lambda bed, rng: "nodeimage_sync"),
    "kill-puller": kill_and_restart(lambda bed, rng: f"puller-{rng.choice(sorted(bed.local.nodes))}"),
    "registry-errors": registry_errors,
    "containerd-restart": containerd_restart,
    "apiserver-outage": apiserver_outage,
    "control-plane-outage": control_plane_outage,
}


@pytest.mark.timeout(1200)
@pytest.mark.parametrize("fault", list(FAULTS))
def test_job_survives_the_fault_with_every_invariant_intact(
    bed: ChaosBed, fault: str, chaos_seed: int, chaos_rounds: int
) -> None:
    rng = random.Random(chaos_seed)
    for round_number in range(chaos_rounds):
        context = f"{fault} round {round_number}, PREPULL_CHAOS_SEED={chaos_seed}"
        run_round(bed, FAULTS[fault], rng, context)


def run_round(bed: ChaosBed, fault: Fault, rng: random.Random, context: str) -> None:
    local = bed.local
    repository = f"chaos/{repository_name(rng)}"
    image = push_small_image(bed.builder, RegistryAt(local.open_registry.address), repository, size=IMAGE_BYTES)
    reference = image.reference_via(bed.proxy.address)
    bed.proxy.limit_rate(PROXY_RATE)
    seen_before = bed.proxy.requests_seen
    with fresh_namespace(local, "chaos") as namespace:
        spec = {
            "image": reference,
            "parallelism": NODES,
            "pullPolicy": {"backoffLimit": BACKOFF_LIMIT, "timeoutSeconds": 120},
            "completionPolicy": {"type": "Always", "activeDeadlineSeconds": int(JOB_TIMEOUT)},
        }
        create_job(local, namespace, "chaos", spec)
        time.sleep(rng.uniform(0.5, 4.0))
        extra_attempts = fault(bed, rng)
        status = wait_for_completion(local, namespace, "chaos", timeout=JOB_TIMEOUT)
        assert (status.get("desired"), status.get("succeeded"), status.get("failed")) == (NODES, NODES, 0), (
            f"{context}: {status}"
        )
        assert_invariants(bed, reference, seen_before, extra_attempts, context)


def assert_invariants(bed: ChaosBed, reference: str, seen_before: int, extra_attempts: int, context: str) -> None:
    local = bed.local
    name, tag = reference.rsplit(":", 1)
    wait_until(lambda: no_tag_pulling(local, name), timeout=RECOVERY_TIMEOUT, what=f"{context}: no tag Pulling")
    listed = custom(local).list_cluster_custom_object(GROUP, VERSION, "nodeimages")["items"]
    names = [item["metadata"]["name"] for item in listed]
    assert sorted(names) == sorted(local.nodes), f"{context}: NodeImages {names}"
    for item in listed:
        entries = [t for t in (item["spec"].get("images") or {}).get(name, {}).get("tags", []) if t["tag"] == tag]
        assert len(entries) == 1, f"{context}: {item['metadata']['name']} has {entries}"
    allowed = NODES * (1 + extra_attempts) * REQUESTS_PER_ATTEMPT
    used = bed.proxy.requests_seen - seen_before
    assert used <= allowed, f"{context}: registry saw {used} requests, retries allow {allowed}"
    wait_until(lambda: healthy(bed.services), timeout=RECOVERY_TIMEOUT, what=f"{context}: every service ready")
    assert_all_services_healthy(bed.services)


def no_tag_pulling(local: LocalCluster, name: str) -> bool:
    for node in local.nodes:
        tags: list[dict[str, Any]] = node_image_tags(local, node).get(name, [])
        if any(t.get("phase") == "Pulling" for t in tags):
            return False
    return True


def healthy(services: PrepullSystem) -> bool:
    try:
        return all(s.process.alive() and s.ready() for s in services.services.values())
    except OSError:
        return False


def repository_name(rng: random.Random) -> str:
    """A repository no earlier round used, drawn from the seeded generator."""
    return f"img-{rng.getrandbits(48):012x}"


CHURN_BACKOFF_LIMIT = 30
"""Pull attempts each node may make while the registry is held failing (the puller backs off 1 s to 4 s)."""


@pytest.mark.timeout(1200)
def test_node_deleted_and_another_added_during_a_job(bed: ChaosBed, chaos_seed: int, chaos_rounds: int) -> None:
    """Upstream §2.10: the deleted node drops out of `desired` and every counter; the added node joins and pulls.

    So that the job is provably still running when the nodes change, the registry (through the proxy) answers
    errors from the job's start until the added node has been given the image: the node is deleted while its
    puller retries (a node whose pull had finished would leave a finished job behind, which ignores new nodes).
    The pullers retry within `CHURN_BACKOFF_LIMIT`, and every pull then completes.
    """
    rng = random.Random(chaos_seed)
    for round_number in range(chaos_rounds):
        run_churn_round(bed, rng, f"node churn round {round_number}, PREPULL_CHAOS_SEED={chaos_seed}")


def run_churn_round(bed: ChaosBed, rng: random.Random, context: str) -> None:
    local = bed.local
    image = push_small_image(
        bed.builder, RegistryAt(local.open_registry.address), f"chaos/{repository_name(rng)}", size=IMAGE_BYTES
    )
    reference = image.reference_via(bed.proxy.address)
    name, tag = reference.rsplit(":", 1)
    deleted, added = rng.choice(sorted(local.nodes)), f"node-x{rng.getrandbits(16):04x}"
    print(f"{context}: delete {deleted}, add {added}")
    bed.proxy.limit_rate(PROXY_RATE)
    seen_before = bed.proxy.requests_seen
    with fresh_namespace(local, "chaos") as namespace:
        spec = {
            "image": reference,
            "parallelism": NODES,
            "pullPolicy": {"backoffLimit": CHURN_BACKOFF_LIMIT, "timeoutSeconds": 120},
            "completionPolicy": {"type": "Always", "activeDeadlineSeconds": int(JOB_TIMEOUT)},
        }
        bed.proxy.fail_with(rng.choice([500, 502, 503]))
        create_job(local, namespace, "chaos", spec)
        time.sleep(rng.uniform(0.5, 4.0))
        remove_node_and_puller(local, bed.services, bed.restarter, deleted)
        add_node_and_puller(
            local, bed.services, bed.restarter, added, {"prepull.io/pool": "general"}, trusted=[bed.proxy.address]
        )
        try:
            wait_until(
                lambda: node_given(local, added, name, tag) and deleted not in nodeimage_names(local),
                timeout=JOB_TIMEOUT,  # an earlier outage can leave the scheduler backing off for ~1 min
                interval=0.5,
                what=f"{added} given the image and {deleted}'s NodeImage gone",
            )
        except TimeoutError as error:
            raise AssertionError(f"{context}: {error}\n{job_and_nodes(local, namespace, name, tag)}") from None
        still_running = not job_complete(local, namespace)
        bed.proxy.limit_rate(PROXY_RATE)
        assert still_running, f"{context}: the job ended while the registry failed"
        status = wait_for_completion(local, namespace, "chaos", timeout=JOB_TIMEOUT)
        assert (status.get("desired"), status.get("succeeded"), status.get("failed")) == (NODES, NODES, 0), (
            f"{context}: {status}"
        )
        assert_invariants(bed, reference, seen_before, CHURN_BACKOFF_LIMIT, context)


def job_complete(local: LocalCluster, namespace: str) -> bool:
    try:
        return bool(job_status(local, namespace, "chaos").get("completionTime"))
    except (kubernetes.client.ApiException, OSError):
        return False


def nodeimage_names(local: LocalCluster) -> list[str]:
    return [
        item["metadata"]["name"]
        for item in custom(local).list_cluster_custom_object(GROUP, VERSION, "nodeimages")["items"]
    ]


def node_given(local: LocalCluster, node: str, name: str, tag: str) -> bool:
    """The node's NodeImage has a spec entry for `name:tag` (the job chose it as a target)."""
    item = custom(local).get_cluster_custom_object(GROUP, VERSION, "nodeimages", node)
    tags = ((item.get("spec") or {}).get("images") or {}).get(name, {}).get("tags", [])
    return any(entry.get("tag") == tag for entry in tags)


def job_and_nodes(local: LocalCluster, namespace: str, name: str, tag: str) -> str:
    """The job's status and each NodeImage's spec entry and status for `name:tag`, for a failure message."""
    lines = [f"job status: {job_status(local, namespace, 'chaos')}"]
    for item in custom(local).list_cluster_custom_object(GROUP, VERSION, "nodeimages")["items"]:
        spec = ((item.get("spec") or {}).get("images") or {}).get(name, {}).get("tags", [])
        status = ((item.get("status") or {}).get("imageStatuses") or {}).get(name, {}).get("tags", [])
        entries = [e for e in spec if e.get("tag") == tag], [e for e in status if e.get("tag") == tag]
        lines.append(f"{item['metadata']['name']}: spec {entries[0]} status {entries[1]}")
    return "\n".join(lines)
