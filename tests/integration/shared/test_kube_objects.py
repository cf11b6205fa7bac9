"""KubeApi against the real apiserver: CRUD, pagination, preconditions, and each failure as our error type."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from localcluster import process
from localcluster.controlplane import ControlPlane
from services.shared.kube import client, errors, kubeapi, resources

pytestmark = pytest.mark.integration

CM = resources.CONFIG_MAPS
SERVICE_ACCOUNTS = resources.Resource("", "v1", "serviceaccounts", "ServiceAccount", True)


def a_config_map(name: str, **labels: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels}, "data": {"k": "v"}}


def test_create_get_patch_delete(kube_api, kube_namespace):
    created = kube_api.create(CM, a_config_map("one"), namespace=kube_namespace)
    assert (created["kind"], created["apiVersion"]) == ("ConfigMap", "v1")
    patched = kube_api.patch(CM, "one", {"data": {"k": None, "new": "x"}}, namespace=kube_namespace)
    assert patched["data"] == {"new": "x"}
    assert kube_api.get(CM, "one", namespace=kube_namespace)["data"] == {"new": "x"}
    kube_api.delete(CM, "one", namespace=kube_namespace)
    with pytest.raises(errors.NotFound):
        kube_api.get(CM, "one", namespace=kube_namespace)


def test_list_reads_every_page_with_selectors(control_plane: ControlPlane, kube_namespace):
    with client.from_kubeconfig(control_plane.kubeconfig) as api_client:
        small_pages = kubeapi.KubeApi(api_client, page_size=2)
        for i in range(5):
            small_pages.create(CM, a_config_map(f"cm-{i}", group="odd" if i % 2 else "even"), namespace=kube_namespace)
        listed = small_pages.list(CM, namespace=kube_namespace, label_selector="group")
        assert sorted(o["metadata"]["name"] for o in listed.items) == [f"cm-{i}" for i in range(5)]
        assert all(o["kind"] == "ConfigMap" for o in listed.items)
        assert int(listed.resource_version) > 0
        odd = small_pages.list(
            CM, namespace=kube_namespace, label_selector="group=odd", field_selector="metadata.name!=cm-1"
        )
        assert [o["metadata"]["name"] for o in odd.items] == ["cm-3"]


def test_list_pages_come_in_the_size_asked_for_with_the_snapshot_resource_version(kube_api, kube_namespace):
    for i in range(5):
        kube_api.create(CM, a_config_map(f"page-{i}", paged="yes"), namespace=kube_namespace)
    pages = list(kube_api.list_pages(CM, namespace=kube_namespace, label_selector="paged", page_size=2))
    assert [len(page.items) for page in pages] == [2, 2, 1]
    assert len({page.resource_version for page in pages}) == 1
    assert sorted(o["metadata"]["name"] for page in pages for o in page.items) == [f"page-{i}" for i in range(5)]


def test_patch_with_a_stale_resource_version_conflicts(kube_api, kube_namespace):
    created = kube_api.create(CM, a_config_map("rv"), namespace=kube_namespace)
    rv = created["metadata"]["resourceVersion"]
    kube_api.patch(CM, "rv", {"data": {"k": "1"}}, namespace=kube_namespace, resource_version=rv)
    with pytest.raises(errors.Conflict):
        kube_api.patch(CM, "rv", {"data": {"k": "2"}}, namespace=kube_namespace, resource_version=rv)
    assert kube_api.get(CM, "rv", namespace=kube_namespace)["data"] == {"k": "1"}


def test_delete_preconditions(kube_api, kube_namespace):
    created = kube_api.create(CM, a_config_map("pre"), namespace=kube_namespace)
    with pytest.raises(errors.Conflict):
        kube_api.delete(CM, "pre", namespace=kube_namespace, uid="not-its-uid")
    with pytest.raises(errors.Conflict):
        kube_api.delete(CM, "pre", namespace=kube_namespace, resource_version="1")
    kube_api.delete(
        CM,
        "pre",
        namespace=kube_namespace,
        uid=created["metadata"]["uid"],
        resource_version=created["metadata"]["resourceVersion"],
        propagation_policy="Background",
    )
    with pytest.raises(errors.NotFound):
        kube_api.delete(CM, "pre", namespace=kube_namespace)


def test_create_of_a_taken_name_is_already_exists(kube_api, kube_namespace):
    kube_api.create(CM, a_config_map("taken"), namespace=kube_namespace)
    with pytest.raises(errors.AlreadyExists):
        kube_api.create(CM, a_config_map("taken"), namespace=kube_namespace)


def test_invalid_objects_carry_the_apiservers_causes(kube_api, kube_namespace):
    with pytest.raises(errors.Invalid) as caught:
        kube_api.create(CM, a_config_map("Not_A_Valid_Name"), namespace=kube_namespace)
    assert caught.value.code == 422
    assert [c.field for c in caught.value.causes] == ["metadata.name"]


def test_patch_status_writes_only_the_status(kube_api):
    namespace = kube_api.create(resources.NAMESPACES, {"metadata": {"generateName": "status-"}})
    name = namespace["metadata"]["name"]
    try:
        updated = kube_api.patch_status(
            resources.NAMESPACES,
            name,
            {"spec": {"finalizers": []}, "status": {"conditions": [{"type": "Probe", "status": "True"}]}},
            resource_version=namespace["metadata"]["resourceVersion"],
        )
        assert [c["type"] for c in updated["status"]["conditions"]] == ["Probe"]
        assert updated["spec"]["finalizers"] == ["kubernetes"]  # the status subresource leaves spec alone
    finally:
        kube_api.delete(resources.NAMESPACES, name)


def test_an_invalid_token_is_unauthorized(control_plane: ControlPlane, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("not-a-valid-token")
    with token_client(control_plane, token_file) as api, pytest.raises(errors.Unauthorized):
        api.list(CM, namespace="default")


def test_a_token_without_rbac_is_forbidden(control_plane: ControlPlane, kube_api, kube_namespace, tmp_path):
    kube_api.create(SERVICE_ACCOUNTS, {"metadata": {"name": "nobody"}}, namespace=kube_namespace)
    token_file = tmp_path / "token"
    token_file.write_text(control_plane.kubectl("create", "token", "nobody", "-n", kube_namespace).stdout.strip())
    with token_client(control_plane, token_file) as api, pytest.raises(errors.Forbidden):
        api.list(CM, namespace=kube_namespace)


def test_a_rotated_token_file_is_used_for_the_next_request(control_plane: ControlPlane, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("not-a-valid-token")
    with token_client(control_plane, token_file) as api:
        with pytest.raises(errors.Unauthorized):
            api.get(resources.NAMESPACES, "default")
        rotated = tmp_path / "token.new"
        rotated.write_text(control_plane.admin_token)
        rotated.replace(token_file)
        assert api.get(resources.NAMESPACES, "default")["metadata"]["name"] == "default"


def test_an_unreachable_apiserver_is_a_transport_error(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("t")
    server = f"https://127.0.0.1:{process.free_port()}"
    settings = client.ClientSettings(connect_timeout=1.0)
    api_client = client.from_token_file(server=server, ca_file=tmp_path / "none", token_file=token_file)
    with api_client, pytest.raises(errors.TransportError):
        kubeapi.KubeApi(api_client, settings=settings).get(resources.NAMESPACES, "default")


@contextlib.contextmanager
def token_client(control_plane: ControlPlane, token_file: Path) -> Iterator[kubeapi.KubeApi]:
    with client.from_token_file(server=control_plane.server, ca_file=control_plane.ca_file, token_file=token_file) as c:
        yield kubeapi.KubeApi(c)
