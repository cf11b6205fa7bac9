"""`prepull trace <job>` against the real apiserver: the job's annotation names the trace, the receiver holds it.

The spans are made as the services will make them (one OTLP-exporting provider per process, the trace carried
between them as the job's `traceparent`), exported for real to the local receiver; the job is a real
ImagePullJob carrying that `traceparent` in its `prepull.io/trace-context` annotation.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode
from opentelemetry.util.types import AttributeValue

from localcluster.controlplane import ControlPlane
from localcluster.otlpreceiver import OtlpReceiver
from localcluster.process import wait_until
from services.cli.__main__ import main
from services.shared.api import constants
from services.shared.kube import client, kubeapi, resources
from services.shared.telemetry import attributes, propagation
from tests.integration.cli.conftest import ProviderFactory

pytestmark = pytest.mark.integration

TIMEOUT = 60.0
DIGEST = "sha256:" + "5e" * 32


@pytest.fixture
def kube(control_plane: ControlPlane, prepull_crds: tuple[str, ...]) -> Iterator[kubeapi.KubeApi]:
    """Our `KubeApi` for the admin kubeconfig, with the CRDs installed."""
    with client.from_kubeconfig(control_plane.kubeconfig) as api_client:
        yield kubeapi.KubeApi(api_client)


def create_job(kube: kubeapi.KubeApi, namespace: str, name: str, traceparent: str | None) -> None:
    """An ImagePullJob for nginx:1.25, annotated with `traceparent` as the scheduler annotates it."""
    annotations = {constants.ANNOTATION_TRACE_CONTEXT: traceparent} if traceparent else {}
    body = {
        "apiVersion": constants.API_VERSION,
        "kind": constants.KIND_IMAGE_PULL_JOB,
        "metadata": {"name": name, "namespace": namespace, "annotations": annotations},
        "spec": {"image": "nginx:1.25", "completionPolicy": {}},
    }
    kube.create(resources.IMAGE_PULL_JOBS, body, namespace=namespace)


def export_job_trace(receiver: OtlpReceiver, exporting_provider: ProviderFactory) -> str:
    """One job's trace from a scheduler and two pullers (node-b's pull fails), plus an unrelated trace.

    Returns:
        The job's `traceparent`, as the scheduler records it on the job.
    """
    scheduler = exporting_provider(receiver.endpoint, "prepull-scheduler").get_tracer("test")
    with scheduler.start_as_current_span("reconcile"):
        traceparent = propagation.traceparent()
        for node in ("node-b", "node-a"):
            with scheduler.start_as_current_span("NodeImage write", attributes={attributes.K8S_NODE_NAME: node}):
                pass
    assert traceparent is not None
    with scheduler.start_as_current_span("reconcile other job"):
        pass
    for node in ("node-a", "node-b"):
        pull_on(node, exporting_provider(receiver.endpoint, "prepull-puller").get_tracer("test"), traceparent)
    return traceparent


def pull_on(node: str, puller: trace.Tracer, traceparent: str) -> None:
    """The puller on `node`: a task span continuing the job's trace, with a CRI call under it."""
    task_attributes: dict[str, AttributeValue] = {
        attributes.K8S_NODE_NAME: node,
        attributes.CONTAINER_IMAGE_NAME: "docker.io/library/nginx",
        attributes.CONTAINER_IMAGE_TAGS: ["1.25"],
        attributes.PULL_ATTEMPT: 1,
    }
    context = propagation.context_from_traceparent(traceparent)
    with puller.start_as_current_span("pull", context=context, attributes=task_attributes) as task:
        with puller.start_as_current_span("PullImage", kind=trace.SpanKind.CLIENT) as call:
            if node == "node-b":
                call.set_status(Status(StatusCode.ERROR, "500 from registry"))
                task.set_attribute(attributes.ERROR_TYPE, "ErrImagePull")
                task.set_status(Status(StatusCode.ERROR))
                return
        task.set_attribute(attributes.CONTAINER_IMAGE_REPO_DIGESTS, [f"docker.io/library/nginx@{DIGEST}"])
        task.set_attribute(attributes.IMAGE_SIZE_BYTES, 72_000_000)


def sections(output: str) -> dict[str, list[str]]:
    """The waterfall's rows under each `[node]` heading, as `indented name | details` strings."""
    result: dict[str, list[str]] = {}
    rows: list[str] = []
    for line in output.splitlines()[2:]:
        if line.startswith("["):
            rows = result.setdefault(line, [])
        else:
            name = line.split(" prepull-")[0].rstrip()
            after_duration = line.split("|")[-1].split(maxsplit=1)[1:]
            rows.append(f"{name} | {''.join(after_duration)}")
    return result


def test_prepull_trace_shows_the_jobs_spans_per_node(
    kube: kubeapi.KubeApi,
    kube_namespace: str,
    control_plane: ControlPlane,
    receiver: OtlpReceiver,
    exporting_provider: ProviderFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    traceparent = export_job_trace(receiver, exporting_provider)
    wait_until(lambda: len(receiver.spans.read()) == 8, timeout=TIMEOUT, what="8 spans at the receiver")
    create_job(kube, kube_namespace, "web", traceparent)

    argv = ["trace", "web", "-n", kube_namespace, "--kubeconfig", str(control_plane.kubeconfig)]
    code = main([*argv, "--spans", str(receiver.spans.path)])

    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith(f"trace {traceparent.split('-')[1]}  7 spans  2 services  2 nodes  ")
    assert sections(out) == {
        "[no node]": ["reconcile | "],
        "[node-a]": [
            "NodeImage write | ",
            "pull | image=docker.io/library/nginx:1.25 digest=sha256:5e5e5e5e5e5e size=68.7MiB attempt=1",
            "  PullImage | ",
        ],
        "[node-b]": [
            "NodeImage write | ",
            "pull | ✗ image=docker.io/library/nginx:1.25 attempt=1 error=ErrImagePull",
            "  PullImage | ✗ error=500 from registry",
        ],
    }


def test_the_command_line_finds_the_cluster_through_kubeconfig(
    kube: kubeapi.KubeApi,
    kube_namespace: str,
    control_plane: ControlPlane,
    receiver: OtlpReceiver,
    exporting_provider: ProviderFactory,
) -> None:
    traceparent = export_job_trace(receiver, exporting_provider)
    wait_until(lambda: len(receiver.spans.read()) == 8, timeout=TIMEOUT, what="8 spans at the receiver")
    create_job(kube, kube_namespace, "web", traceparent)
    environ = {**os.environ, "KUBECONFIG": str(control_plane.kubeconfig)}

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "services.cli",
            "trace",
            "ipj/web",
            "-n",
            kube_namespace,
            "--spans",
            str(receiver.spans.path),
        ],
        env=environ,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert list(sections(done.stdout)) == ["[no node]", "[node-a]", "[node-b]"]


def test_a_job_without_a_trace_context_is_reported(
    kube: kubeapi.KubeApi,
    kube_namespace: str,
    control_plane: ControlPlane,
    receiver: OtlpReceiver,
    capsys: pytest.CaptureFixture[str],
) -> None:
    create_job(kube, kube_namespace, "untraced", traceparent=None)
    base = ["-n", kube_namespace, "--kubeconfig", str(control_plane.kubeconfig), "--spans", str(receiver.spans.path)]

    assert main(["trace", "untraced", *base]) == 1
    assert "ImagePullJob " + kube_namespace + "/untraced has no prepull.io/trace-context" in capsys.readouterr().err
    assert main(["trace", "absent", *base]) == 1
    assert capsys.readouterr().err == f"prepull: job absent not found in namespace {kube_namespace}\n"
