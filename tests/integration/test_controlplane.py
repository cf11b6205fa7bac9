"""The local control plane behaves like a real cluster: version, CRUD and watch, CRDs, RBAC, token
authentication, garbage collection, and restarts of the apiserver and etcd that keep the data."""

from __future__ import annotations

import base64
import json
import time

import kubernetes.client
import kubernetes.watch
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from kubernetes.client.exceptions import ApiException

from localcluster import pki
from localcluster.controlplane import APISERVER, CONTROLLER_MANAGER, ETCD, ControlPlane
from localcluster.process import wait_until

pytestmark = pytest.mark.integration

CRD_GROUP = "harness.prepull.test"
CRD_NAME = f"widgets.{CRD_GROUP}"
CRD_MANIFEST = f"""
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: {CRD_NAME}
spec:
  group: {CRD_GROUP}
  scope: Namespaced
  names: {{plural: widgets, singular: widget, kind: Widget}}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {{type: integer, minimum: 1}}
"""


def config_map(name: str, **metadata: object) -> dict[str, object]:
    return {"metadata": {"name": name, **metadata}, "data": {"name": name}}


def is_absent(read) -> bool:
    try:
        read()
    except ApiException as error:
        if error.status == 404:
            return True
        raise
    return False


def request_token(api: kubernetes.client.ApiClient, namespace: str, service_account: str) -> str:
    """A TokenRequest token for the ServiceAccount with the apiserver's default audience."""
    body = kubernetes.client.AuthenticationV1TokenRequest(spec=kubernetes.client.V1TokenRequestSpec(audiences=[]))
    response = kubernetes.client.CoreV1Api(api).create_namespaced_service_account_token(
        service_account, namespace, body
    )
    return str(response.status.token)


def review(api: kubernetes.client.ApiClient, token: str) -> kubernetes.client.V1TokenReviewStatus:
    body = kubernetes.client.V1TokenReview(spec=kubernetes.client.V1TokenReviewSpec(token=token))
    return kubernetes.client.AuthenticationV1Api(api).create_token_review(body).status


def jwt_parts(token: str) -> tuple[dict[str, object], dict[str, object]]:
    def decode(part: str) -> dict[str, object]:
        decoded: dict[str, object] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
        return decoded

    header, payload, _signature = token.split(".")
    return decode(header), decode(payload)


def test_version_is_kubernetes_1_34(admin_api):
    info = kubernetes.client.VersionApi(admin_api).get_code()

    assert info.git_version.startswith("v1.34.")
    assert (info.major, info.minor) == ("1", "34")


def test_python_client_creates_lists_and_watches(admin_api, kube_namespace):
    core = kubernetes.client.CoreV1Api(admin_api)
    core.create_namespaced_config_map(kube_namespace, config_map("first", labels={"suite": "crud"}))

    listed = core.list_namespaced_config_map(kube_namespace, label_selector="suite=crud")
    assert [item.metadata.name for item in listed.items] == ["first"]

    core.create_namespaced_config_map(kube_namespace, config_map("second", labels={"suite": "crud"}))
    watcher = kubernetes.watch.Watch()
    seen = []
    for event in watcher.stream(
        core.list_namespaced_config_map,
        kube_namespace,
        label_selector="suite=crud",
        resource_version=listed.metadata.resource_version,
        timeout_seconds=60,
    ):
        seen.append((event["type"], event["object"].metadata.name, event["object"].data))
        watcher.stop()
    assert seen == [("ADDED", "second", {"name": "second"})]


def test_crd_applied_with_kubectl_is_served(control_plane, admin_api, kube_namespace):
    control_plane.kubectl("apply", "-f", "-", input=CRD_MANIFEST)
    try:
        control_plane.kubectl("wait", "--for=condition=Established", f"crd/{CRD_NAME}", "--timeout=60s")
        custom = kubernetes.client.CustomObjectsApi(admin_api)
        widget = {"apiVersion": f"{CRD_GROUP}/v1", "kind": "Widget", "metadata": {"name": "small"}, "spec": {"size": 3}}

        def create_widget() -> bool:
            custom.create_namespaced_custom_object(CRD_GROUP, "v1", kube_namespace, "widgets", widget)
            return True

        wait_until(create_widget, timeout=30, what="the Widget endpoint to accept objects")
        stored = custom.get_namespaced_custom_object(CRD_GROUP, "v1", kube_namespace, "widgets", "small")
        assert stored["spec"] == {"size": 3}
        with pytest.raises(ApiException) as invalid:
            custom.create_namespaced_custom_object(
                CRD_GROUP, "v1", kube_namespace, "widgets", widget | {"metadata": {"name": "zero"}, "spec": {"size": 0}}
            )
        assert invalid.value.status == 422
        listed = control_plane.kubectl("get", "widgets", "-n", kube_namespace, "-o", "name")
        assert listed.stdout.split() == [f"widget.{CRD_GROUP}/small"]
    finally:
        control_plane.kubectl("delete", f"crd/{CRD_NAME}", "--wait=false", "--ignore-not-found")


def test_rbac_denies_a_service_account_without_a_role_until_one_is_bound(control_plane, admin_api, kube_namespace):
    core = kubernetes.client.CoreV1Api(admin_api)
    core.create_namespaced_service_account(kube_namespace, {"metadata": {"name": "nobody"}})
    token = request_token(admin_api, kube_namespace, "nobody")

    with control_plane.api_client_for_token(token) as as_nobody:
        with pytest.raises(ApiException) as denied:
            kubernetes.client.CoreV1Api(as_nobody).list_namespaced_config_map(kube_namespace)
        assert denied.value.status == 403

        rbac = kubernetes.client.RbacAuthorizationV1Api(admin_api)
        rbac.create_namespaced_role(
            kube_namespace,
            {
                "metadata": {"name": "read-cm"},
                "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list"]}],
            },
        )
        rbac.create_namespaced_role_binding(
            kube_namespace,
            {
                "metadata": {"name": "nobody-reads-cm"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "read-cm"},
                "subjects": [{"kind": "ServiceAccount", "name": "nobody", "namespace": kube_namespace}],
            },
        )

        def allowed() -> bool:
            kubernetes.client.CoreV1Api(as_nobody).list_namespaced_config_map(kube_namespace)
            return True

        wait_until(allowed, timeout=30, what="the RoleBinding to take effect")
        with pytest.raises(ApiException) as still_denied:
            kubernetes.client.CoreV1Api(as_nobody).list_namespaced_secret(kube_namespace)
        assert still_denied.value.status == 403


def test_token_review_accepts_real_tokens_and_rejects_forged_or_expired_ones(control_plane, admin_api, kube_namespace):
    kubernetes.client.CoreV1Api(admin_api).create_namespaced_service_account(
        kube_namespace, {"metadata": {"name": "reviewed"}}
    )
    issued = request_token(admin_api, kube_namespace, "reviewed")
    header, claims = jwt_parts(issued)
    real_key = pki.load_signing_key(control_plane.service_account_key)
    assert claims["iss"] == control_plane.service_account_issuer
    assert header["kid"] == pki.key_id(real_key)

    accepted = review(admin_api, issued)
    assert accepted.authenticated is True
    assert accepted.user.username == f"system:serviceaccount:{kube_namespace}:reviewed"

    resigned = pki.sign_jwt(real_key, claims, kid=pki.key_id(real_key))
    assert review(admin_api, resigned).authenticated is True

    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = pki.sign_jwt(other_key, claims, kid=pki.key_id(real_key))
    assert not review(admin_api, forged).authenticated

    now = int(time.time())
    expired = pki.sign_jwt(real_key, claims | {"iat": now - 7200, "nbf": now - 7200, "exp": now - 3600})
    assert not review(admin_api, expired).authenticated


def test_garbage_collector_deletes_dependents_of_a_deleted_owner(admin_api, kube_namespace):
    core = kubernetes.client.CoreV1Api(admin_api)
    owner = core.create_namespaced_config_map(kube_namespace, config_map("owner"))
    reference = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid}
    core.create_namespaced_config_map(kube_namespace, config_map("dependent", ownerReferences=[reference]))
    core.create_namespaced_config_map(kube_namespace, config_map("bystander"))

    core.delete_namespaced_config_map("owner", kube_namespace)

    wait_until(
        lambda: is_absent(lambda: core.read_namespaced_config_map("dependent", kube_namespace)),
        timeout=120,
        interval=0.5,
        what="the garbage collector to delete the dependent ConfigMap",
    )
    assert core.read_namespaced_config_map("bystander", kube_namespace).metadata.name == "bystander"


def test_state_reattaches_from_json_without_credentials(control_plane):
    state = json.loads(json.dumps(control_plane.to_state()))

    attached = ControlPlane.from_state(state)

    assert attached.server == control_plane.server
    assert all(attached.alive(name) for name in (ETCD, APISERVER, CONTROLLER_MANAGER))
    assert state["pids"] == control_plane.to_state()["pids"]
    assert control_plane.admin_token not in json.dumps(state)
    assert attached.admin_token == control_plane.admin_token


def read_when_served(core: kubernetes.client.CoreV1Api, name: str, namespace: str):
    """Read a ConfigMap, retrying while the apiserver (or a pooled connection to it) comes back."""
    wait_until(
        lambda: core.read_namespaced_config_map(name, namespace) is not None,
        timeout=60,
        what=f"ConfigMap {namespace}/{name}",
    )
    return core.read_namespaced_config_map(name, namespace)


def test_apiserver_restart_on_same_port_keeps_objects(control_plane, admin_api, kube_namespace):
    core = kubernetes.client.CoreV1Api(admin_api)
    core.create_namespaced_config_map(kube_namespace, config_map("survivor"))
    server, pid = control_plane.server, control_plane.to_state()["pids"][APISERVER]

    control_plane.restart_apiserver()

    assert control_plane.server == server
    assert control_plane.to_state()["pids"][APISERVER] != pid
    assert read_when_served(core, "survivor", kube_namespace).data == {"name": "survivor"}
    core.create_namespaced_config_map(kube_namespace, config_map("after-restart"))


def test_etcd_restart_on_same_port_and_data_keeps_objects(control_plane, admin_api, kube_namespace):
    core = kubernetes.client.CoreV1Api(admin_api)
    core.create_namespaced_config_map(kube_namespace, config_map("in-etcd"))
    pid = control_plane.to_state()["pids"][ETCD]

    control_plane.restart_etcd()

    assert control_plane.to_state()["pids"][ETCD] != pid
    assert read_when_served(core, "in-etcd", kube_namespace).data == {"name": "in-etcd"}


def test_etcd_crash_makes_apiserver_unready_until_etcd_returns(control_plane, admin_api, kube_namespace):
    core = kubernetes.client.CoreV1Api(admin_api)
    core.create_namespaced_config_map(kube_namespace, config_map("before-outage"))

    control_plane.stop_etcd(kill=True)
    try:
        assert not control_plane.alive(ETCD)
        wait_until(
            lambda: control_plane.http_status("/readyz") != 200,
            timeout=60,
            what="the apiserver to report etcd as not ready",
        )
    finally:
        control_plane.start_etcd()

    assert control_plane.http_status("/readyz") == 200
    assert read_when_served(core, "before-outage", kube_namespace).data == {"name": "before-outage"}
    core.create_namespaced_config_map(kube_namespace, config_map("after-outage"))
