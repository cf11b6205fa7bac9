"""Resource descriptors build the apiserver's URLs, core group and named groups alike."""

from __future__ import annotations

import pytest

from services.shared.api import constants
from services.shared.kube import resources


@pytest.mark.parametrize(
    ("resource", "kwargs", "path"),
    [
        pytest.param(resources.NODES, {}, "/api/v1/nodes", id="core-cluster-collection"),
        pytest.param(resources.NODES, {"name": "n1"}, "/api/v1/nodes/n1", id="core-cluster-object"),
        pytest.param(resources.PODS, {}, "/api/v1/pods", id="core-all-namespaces"),
        pytest.param(resources.PODS, {"namespace": "ns"}, "/api/v1/namespaces/ns/pods", id="core-namespaced"),
        pytest.param(
            resources.NODE_IMAGES,
            {"name": "n1", "subresource": "status"},
            "/apis/prepull.io/v1beta1/nodeimages/n1/status",
            id="crd-status",
        ),
        pytest.param(
            resources.IMAGE_PULL_JOBS,
            {"namespace": "ns", "name": "j"},
            "/apis/prepull.io/v1beta1/namespaces/ns/imagepulljobs/j",
            id="crd-namespaced",
        ),
        pytest.param(
            resources.LEASES,
            {"namespace": "kube-system", "name": "x"},
            "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/x",
            id="group",
        ),
    ],
)
def test_paths(resource, kwargs, path):
    assert resource.path(**kwargs) == path


@pytest.mark.parametrize(
    ("resource", "kwargs"),
    [
        pytest.param(resources.NODES, {"namespace": "ns"}, id="namespace-on-cluster-scoped"),
        pytest.param(resources.PODS, {"name": "p"}, id="name-without-namespace"),
        pytest.param(resources.NODES, {"subresource": "status"}, id="subresource-without-name"),
    ],
)
def test_scope_mistakes_are_refused(resource, kwargs):
    with pytest.raises(ValueError):
        resource.path(**kwargs)


def test_our_kinds_use_the_names_from_constants():
    assert resources.NODE_IMAGES.api_version == constants.API_VERSION
    assert resources.NODE_IMAGES.kind == constants.KIND_NODE_IMAGE
    assert not resources.NODE_IMAGES.namespaced
    assert resources.IMAGE_LIST_PULL_JOBS.plural == constants.PLURAL_IMAGE_LIST_PULL_JOBS
    assert resources.PODS.api_version == "v1"
