"""The Jobs gRPC service: a thin, RBAC-checked layer over the ImagePullJob CRD."""

from __future__ import annotations

from collections.abc import Callable

import grpc
import kubernetes.client
import pytest

from services.scheduler.settings import DEFAULT_JOBS_AUDIENCE
from services.shared.gen.prepull.v1 import jobs_pb2, jobs_pb2_grpc
from tests.integration.scheduler.conftest import SchedulerFactory

pytestmark = pytest.mark.integration


def _token(api: kubernetes.client.ApiClient, namespace: str, name: str, *, allowed: bool) -> str:
    core = kubernetes.client.CoreV1Api(api)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": name}})
    if allowed:
        rbac = kubernetes.client.RbacAuthorizationV1Api(api)
        rule = {
            "apiGroups": ["prepull.io"],
            "resources": ["imagepulljobs"],
            "verbs": ["create", "get", "list", "watch", "delete"],
        }
        rbac.create_namespaced_role(namespace, {"metadata": {"name": name}, "rules": [rule]})
        rbac.create_namespaced_role_binding(
            namespace,
            {
                "metadata": {"name": name},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
                "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
            },
        )
    request = kubernetes.client.AuthenticationV1TokenRequest(
        spec=kubernetes.client.V1TokenRequestSpec(audiences=[DEFAULT_JOBS_AUDIENCE], expiration_seconds=600)
    )
    token: str = core.create_namespaced_service_account_token(name, namespace, request).status.token
    return token


def _code(call: Callable[[], object]) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as raised:
        call()
    code: grpc.StatusCode = raised.value.code()
    return code


def test_create_watch_get_list_delete_with_rbac(
    admin_api: kubernetes.client.ApiClient,
    kube_namespace: str,
    scheduler_factory: SchedulerFactory,
    test_label: dict[str, str],
) -> None:
    app = scheduler_factory()
    platform = [("authorization", f"Bearer {_token(admin_api, kube_namespace, 'platform', allowed=True)}")]
    nobody = [("authorization", f"Bearer {_token(admin_api, kube_namespace, 'nobody', allowed=False)}")]
    spec = jobs_pb2.JobSpec(image="nginx:1.25", node_selector=jobs_pb2.LabelSelector(match_labels=test_label))
    create = jobs_pb2.CreateJobRequest(namespace=kube_namespace, name="via-grpc", spec=spec)
    with grpc.insecure_channel(f"127.0.0.1:{app.grpc_port}") as channel:
        stub = jobs_pb2_grpc.JobsStub(channel)
        assert _code(lambda: stub.CreateJob(create, timeout=30)) == grpc.StatusCode.UNAUTHENTICATED
        assert _code(lambda: stub.CreateJob(create, metadata=nobody, timeout=30)) == grpc.StatusCode.PERMISSION_DENIED

        created = stub.CreateJob(create, metadata=platform, timeout=30)
        assert created.uid and created.spec.image == "nginx:1.25"
        assert dict(created.spec.node_selector.match_labels) == test_label

        watch = jobs_pb2.WatchJobRequest(namespace=kube_namespace, name="via-grpc", until_finished=True)
        events = list(stub.WatchJob(watch, metadata=platform, timeout=60))
        assert events[0].type == jobs_pb2.JobEvent.INITIAL
        assert events[-1].job.status.HasField("completion_time")  # matches no node: completes at once
        assert events[-1].job.status.message == "job has completed"

        got = stub.GetJob(jobs_pb2.GetJobRequest(namespace=kube_namespace, name="via-grpc"), metadata=platform)
        assert len(got.trace_id) == 32
        listed = stub.ListJobs(jobs_pb2.ListJobsRequest(namespace=kube_namespace), metadata=platform, timeout=30)
        assert [j.name for j in listed.jobs] == ["via-grpc"]

        wrong = jobs_pb2.DeleteJobRequest(namespace=kube_namespace, name="via-grpc", uid="not-the-uid")
        assert (
            _code(lambda: stub.DeleteJob(wrong, metadata=platform, timeout=30)) == grpc.StatusCode.FAILED_PRECONDITION
        )
        right = jobs_pb2.DeleteJobRequest(namespace=kube_namespace, name="via-grpc", uid=created.uid)
        stub.DeleteJob(right, metadata=platform, timeout=30)
        missing = jobs_pb2.GetJobRequest(namespace=kube_namespace, name="via-grpc")
        assert _code(lambda: stub.GetJob(missing, metadata=platform, timeout=30)) == grpc.StatusCode.NOT_FOUND
