"""Session-scoped fixtures for the real control plane (etcd, kube-apiserver, kube-controller-manager).

One control plane serves the whole session; tests isolate themselves with a namespace each
(`kube_namespace`) and with uniquely named Nodes (`node_identity_factory`), and clean up what they make
so that tests counting Nodes or Pods elsewhere are not disturbed. When a test that used the control plane
fails, the tail of every component's log is attached to its report.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Generator, Iterator, Mapping

import kubernetes.client
import pytest
from kubernetes.client.exceptions import ApiException

from localcluster import identity, nodes
from localcluster.controlplane import ControlPlane

CONTROL_PLANE_KEY = pytest.StashKey[ControlPlane]()
HTTP_NOT_FOUND = 404


@pytest.fixture(scope="session")
def control_plane(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """A started control plane in a temporary state directory, stopped (by PID) at session end."""
    plane = ControlPlane(tmp_path_factory.mktemp("controlplane"))
    request.config.stash[CONTROL_PLANE_KEY] = plane
    plane.start()
    try:
        yield plane
    finally:
        plane.stop()


@pytest.fixture(scope="session")
def admin_api(control_plane: ControlPlane) -> Iterator[kubernetes.client.ApiClient]:
    """An admin client (client certificate in group system:masters) for the session's control plane."""
    with control_plane.api_client() as client:
        yield client


@pytest.fixture
def kube_namespace(admin_api: kubernetes.client.ApiClient) -> Iterator[str]:
    """A fresh namespace for one test, deleted afterwards (the namespace controller empties it)."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    core = kubernetes.client.CoreV1Api(admin_api)
    core.create_namespace({"metadata": {"name": name}})
    yield name
    _ignore_not_found(lambda: core.delete_namespace(name))


@pytest.fixture(scope="session")
def puller_service_account(admin_api: kubernetes.client.ApiClient) -> str:
    """`prepull-system/prepull-puller` exists; returns the ServiceAccount's username."""
    identity.ensure_puller_service_account(admin_api)
    return f"system:serviceaccount:{identity.PULLER_NAMESPACE}:{identity.PULLER_SERVICE_ACCOUNT}"


NodeIdentityFactory = Callable[..., identity.NodeIdentity]


@pytest.fixture
def node_identity_factory(
    control_plane: ControlPlane, admin_api: kubernetes.client.ApiClient, puller_service_account: str
) -> Iterator[NodeIdentityFactory]:
    """Make registered Nodes with a started puller identity; all are stopped and deleted afterwards.

    Call it as `factory(labels={...}, expiration_seconds=600, refresh_fraction=0.01)`; every argument is
    optional and node names are unique per call.
    """
    made: list[identity.NodeIdentity] = []

    def make(
        *,
        labels: Mapping[str, str] | None = None,
        expiration_seconds: int = identity.DEFAULT_TOKEN_LIFETIME_SECONDS,
        refresh_fraction: float = identity.DEFAULT_REFRESH_FRACTION,
    ) -> identity.NodeIdentity:
        node = f"node-{uuid.uuid4().hex[:8]}"
        made.append(
            identity.provision_node(
                admin_api,
                state_dir=control_plane.state_dir,
                node=node,
                labels=labels,
                expiration_seconds=expiration_seconds,
                refresh_fraction=refresh_fraction,
            )
        )
        return made[-1]

    yield make
    for each in made:
        each.stop()
        _delete_placeholder_pod(admin_api, each.pod_name)
        nodes.delete_node(admin_api, each.node)


def _delete_placeholder_pod(api: kubernetes.client.ApiClient, name: str) -> None:
    """Delete at once: no kubelet will ever confirm a graceful deletion of a Pod bound to a fake node."""
    core = kubernetes.client.CoreV1Api(api)
    _ignore_not_found(lambda: core.delete_namespaced_pod(name, identity.PULLER_NAMESPACE, grace_period_seconds=0))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Attach the component log tails to the report of a failed test that used the control plane."""
    report = yield
    plane = item.config.stash.get(CONTROL_PLANE_KEY, None)
    if report.failed and plane is not None and "control_plane" in getattr(item, "fixturenames", ()):
        report.sections.append(("control plane logs", plane.log_tails()))
    return report


def _ignore_not_found(call: Callable[[], object]) -> None:
    try:
        call()
    except ApiException as error:
        if error.status != HTTP_NOT_FOUND:
            raise
