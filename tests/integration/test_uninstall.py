"""Uninstall as docs/deploy.md says leaves nothing of prepull behind, and nothing hangs on a finalizer.

On a control plane of its own (deleting the CRDs would break every other test on the session's), prepull is
installed with `kubectl apply -k deploy/` and its workloads run from the manifests (`isolated_install`). A job and
a list job pull on both real containerd nodes. Then the documented steps: delete all jobs while the scheduler
runs (it removes its finalizers), then `kubectl delete -k deploy/`, during which a stand-in kubelet stops each
service when its Pod is deleted. Afterwards a sweep over every listable kind of the apiserver finds no object of
ours: nothing from the kustomization, no CRD or API group, no NodeImage, Pod, Lease or Event.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import kubernetes.client
import pytest

from localcluster.images import ImageBuilder, ImageRecipe, PushedImage
from localcluster.process import wait_until
from localcluster.registry import Registry
from tests.support.deploy_manifests import DEPLOY_DIR, kustomization_documents
from tests.support.isolated_install import (
    GROUP,
    VERSION,
    Installed,
    create_job,
    create_namespace,
    image_on_node,
    installed_and_running,
    wait_for_completion,
)
from tests.support.node_fixtures import ContainerdNodes

pytestmark = pytest.mark.integration

NAME_MARK = "prepull"
LABEL = ("app.kubernetes.io/name", "prepull")
SYSTEM_NAMESPACE = "prepull-system"
GONE_TIMEOUT = 90.0
DELETE_TIMEOUT = "100s"


@pytest.fixture
def installed(tmp_path_factory: pytest.TempPathFactory, containerd_nodes: ContainerdNodes) -> Iterator[Installed]:
    with installed_and_running(Path(tmp_path_factory.mktemp("uninstall")), list(containerd_nodes)) as ready:
        yield ready


def _push(builder: ImageBuilder, registry: Registry, name: str) -> PushedImage:
    repository = f"prepull-test/uninstall-{name}-{uuid.uuid4().hex[:8]}"
    return builder.build_and_push(ImageRecipe(repository, total_bytes=256 << 10, layers=1), registry, repository)


def _pull_with_a_job_and_a_list_job(installed: Installed, builder: ImageBuilder, registry: Registry) -> None:
    namespace = create_namespace(installed.api, "uninstall")
    single, first, second = (_push(builder, registry, name) for name in ("single", "first", "second"))
    always = {"type": "Always"}
    create_job(installed, "ImagePullJob", namespace, "single", {"image": single.reference, "completionPolicy": always})
    listed = {"images": [first.reference, second.reference], "completionPolicy": always}
    create_job(installed, "ImageListPullJob", namespace, "listed", listed)
    nodes = len(installed.runtimes)
    status = wait_for_completion(installed, "ImagePullJob", namespace, "single")
    assert (status["succeeded"], status["failed"]) == (nodes, 0), status
    status = wait_for_completion(installed, "ImageListPullJob", namespace, "listed")
    assert (status["desired"], status["succeeded"]) == (2, 2), status
    for runtime in installed.runtimes.values():
        for image in (single, first, second):
            assert image_on_node(runtime, image.reference), (runtime.name, image.reference)


def _ours(item: Mapping[str, Any]) -> bool:
    """An object prepull made or installed: of our API, or by name, label, namespace, or (an Event) what it is
    about or who reported it."""
    metadata = item.get("metadata") or {}
    labels = metadata.get("labels") or {}
    if str(item.get("apiVersion", "")).startswith(f"{GROUP}/"):
        return True
    if NAME_MARK in str(metadata.get("name", "")) or labels.get(LABEL[0]) == LABEL[1]:
        return True
    if metadata.get("namespace") == SYSTEM_NAMESPACE:
        return True
    if item.get("kind") != "Event":
        return False
    involved = item.get("involvedObject") or {}
    reporters = (str(item.get("reportingComponent") or ""), str((item.get("source") or {}).get("component") or ""))
    return str(involved.get("apiVersion", "")).startswith(f"{GROUP}/") or any(NAME_MARK in r for r in reporters)


def _describe(item: Mapping[str, Any]) -> str:
    metadata = item["metadata"]
    text = f"{item.get('kind')} {metadata.get('namespace', '')}/{metadata['name']}"
    if item.get("kind") == "Event":
        involved = item.get("involvedObject") or {}
        text += f" about {involved.get('apiVersion')} {involved.get('kind')} {involved.get('name')}"
        text += f" from {item.get('reportingComponent') or (item.get('source') or {}).get('component')}"
    return text


def leftovers(installed: Installed) -> list[str]:
    """Every object of ours still served, over every listable kind, plus our API group if still served."""
    kinds = installed.plane.kubectl("api-resources", "--verbs=list", "-o", "name").stdout.split()
    listed = json.loads(installed.plane.kubectl("get", ",".join(kinds), "--all-namespaces", "-o", "json").stdout)
    found = [_describe(item) for item in listed["items"] if _ours(item)]
    groups = kubernetes.client.ApisApi(installed.api).get_api_versions().groups
    found += [f"API group {group.name}" for group in groups if group.name == GROUP]
    return found


def _what_the_sweep_must_see(installed: Installed) -> set[str]:
    """While installed: every object of the kustomization, the NodeImages, the Leases, the Pods, the API group."""
    expected = {_describe(document) for document in kustomization_documents()}
    expected |= {f"NodeImage /{node}" for node in installed.runtimes}
    expected |= {f"Lease {SYSTEM_NAMESPACE}/{name}" for name in ("prepull-scheduler", "prepull-nodeimage-sync")}
    expected |= {f"Pod {SYSTEM_NAMESPACE}/{pod}" for pod in installed.workloads.pods}
    return expected | {f"API group {GROUP}"}


def test_uninstall_as_documented_leaves_nothing_behind(
    installed: Installed, image_builder: ImageBuilder, open_registry: Registry
) -> None:
    _pull_with_a_job_and_a_list_job(installed, image_builder, open_registry)
    missing = _what_the_sweep_must_see(installed) - set(leftovers(installed))
    assert not missing, f"the sweep misses objects of ours while installed: {sorted(missing)}"
    kubectl = installed.plane.kubectl

    kubectl("delete", "imagelistpulljobs,imagepulljobs", "--all", "--all-namespaces", "--wait=true")
    for plural in ("imagepulljobs", "imagelistpulljobs"):
        remaining = installed.custom().list_cluster_custom_object(GROUP, "v1beta1", plural)["items"]
        assert remaining == [], plural
    with installed.workloads.acting_as_kubelet():
        kubectl("delete", "-k", str(DEPLOY_DIR), f"--timeout={DELETE_TIMEOUT}")
    kubectl("delete", "events", "--all-namespaces", f"--field-selector=involvedObject.apiVersion={GROUP}/{VERSION}")

    seen: list[str] = []

    def nothing_left() -> bool:
        seen[:] = leftovers(installed)
        return not seen

    try:
        wait_until(nothing_left, timeout=GONE_TIMEOUT, interval=1.0, what="every prepull object to be gone")
    except TimeoutError:
        pytest.fail("left behind after uninstall:\n  " + "\n  ".join(seen))
    assert installed.workloads.pods == {}, "services whose Pods were deleted must have been stopped"
