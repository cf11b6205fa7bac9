"""One ImageListPullJob, one trace holding every child's spans (design §4, issue 7), with a real exporter.

The scheduler runs as a process that exports OTLP to a receiver in this test, against the real apiserver. The
list job's annotation names its root span (`ImageListPullJob <ns>/<name>`); each child ImagePullJob is created
with an annotation in the same trace, and the children's own spans (their `reconcile`s and tag-entry writes)
hang under it. `prepull trace imagelistpulljob/<name>` then prints the whole list job.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from localcluster.controlplane import ControlPlane
from localcluster.otlpreceiver import OtlpReceiver
from localcluster.process import ManagedProcess, free_port, wait_until
from services.cli.__main__ import main as prepull
from services.shared.api import constants
from services.shared.kube import errors, objects, resources
from services.shared.telemetry import attributes
from tests.integration.scheduler import helpers

pytestmark = pytest.mark.integration

SERVICE = "prepull-scheduler"
TIMEOUT = 90.0
IMAGES = ("nginx:1.25", "busybox:1.36")


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[OtlpReceiver]:
    with OtlpReceiver(tmp_path / "spans.jsonl") as running:
        yield running


@pytest.fixture
def scheduler(
    control_plane: ControlPlane,
    prepull_crds: tuple[str, ...],
    kube: objects.ObjectApi,
    kube_namespace: str,
    receiver: OtlpReceiver,
    tmp_path: Path,
) -> Iterator[ManagedProcess]:
    """`prepull-scheduler` as a process watching the test's namespace, exporting every span to `receiver`."""
    process = ManagedProcess(
        name="scheduler",
        argv=[
            sys.executable,
            "-m",
            "services.scheduler",
            f"--kubeconfig={control_plane.kubeconfig}",
            f"--grpc-address=127.0.0.1:{free_port()}",
            f"--metrics-address=127.0.0.1:{free_port()}",
            f"--health-address=127.0.0.1:{free_port()}",
            f"--watch-namespace={kube_namespace}",
            "--leader-elect=false",
        ],
        log_path=tmp_path / "scheduler.log",
        cwd=Path(__file__).resolve().parents[3],
        env={
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_SERVICE_NAME": SERVICE,
            "OTEL_BSP_SCHEDULE_DELAY": "200",
            "PYTHONUNBUFFERED": "1",
        },
    )
    process.start()
    try:
        yield process
    finally:
        with contextlib.suppress(errors.KubeError):
            helpers.delete_jobs(kube, kube_namespace)
        process.stop()


def children(kube: objects.ObjectApi, namespace: str) -> list[dict[str, Any]]:
    return list(kube.list(resources.IMAGE_PULL_JOBS, namespace=namespace).items)


def annotation(job: dict[str, Any]) -> str:
    return str(((job.get("metadata") or {}).get("annotations") or {}).get(constants.ANNOTATION_TRACE_CONTEXT) or "")


def trace_id(traceparent: str) -> str:
    version, trace, span, _flags = traceparent.split("-")
    assert version == "00" and len(trace) == 32 and len(span) == 16
    return trace


def spans_of(receiver: OtlpReceiver, trace: str) -> list[dict[str, Any]]:
    return [span for span in receiver.spans.read() if span["trace_id"] == trace]


def ancestors(span: dict[str, Any], by_id: dict[str, dict[str, Any]]) -> list[str]:
    """Names up the parent chain (the span's own first), as far as the exported spans go."""
    chain = [span["name"]]
    while span["parent_span_id"] in by_id:
        span = by_id[span["parent_span_id"]]
        chain.append(span["name"])
    return chain


def test_a_list_jobs_trace_holds_every_childs_spans(
    control_plane: ControlPlane,
    kube: objects.ObjectApi,
    kube_namespace: str,
    scheduler: ManagedProcess,
    receiver: OtlpReceiver,
    test_label: dict[str, str],
    node_images: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    node = node_images(labels=test_label)
    body = {
        "apiVersion": constants.API_VERSION,
        "kind": constants.KIND_IMAGE_LIST_PULL_JOB,
        "metadata": {"name": "base", "namespace": kube_namespace},
        "spec": {
            "images": list(IMAGES),
            "selector": {"matchLabels": test_label},
            "completionPolicy": {"type": "Never"},
        },
    }
    kube.create(resources.IMAGE_LIST_PULL_JOBS, body, namespace=kube_namespace)
    wait_until(lambda: len(children(kube, kube_namespace)) == len(IMAGES), timeout=TIMEOUT, what="two children")
    wait_until(
        lambda: all(helpers.tag_entry(kube, node, *image.split(":")) for image in IMAGES),
        timeout=TIMEOUT,
        what="both children's tag entries on the node",
    )
    list_job = kube.get(resources.IMAGE_LIST_PULL_JOBS, "base", namespace=kube_namespace)
    trace = trace_id(annotation(list_job))
    names = sorted(child["metadata"]["name"] for child in children(kube, kube_namespace))
    assert {trace_id(annotation(child)) for child in children(kube, kube_namespace)} == {trace}

    root_name = f"ImageListPullJob {kube_namespace}/base"
    child_roots = {f"ImagePullJob {kube_namespace}/{name}" for name in names}

    def complete() -> bool:
        spans = spans_of(receiver, trace)
        found = {span["name"] for span in spans}
        reconciled = {span["attributes"].get(attributes.JOB_NAME) for span in spans if span["name"] == "reconcile"}
        writes = sum(1 for span in spans if span["name"] == "nodeimage.write")
        # A parent span ends, and is exported, after its children: wait until no exported span misses its parent.
        ids = {span["span_id"] for span in spans}
        closed = all(span["parent_span_id"] in ids for span in spans if span["parent_span_id"])
        wanted = root_name in found and child_roots <= found and set(names) <= reconciled
        return wanted and writes >= len(IMAGES) and closed

    wait_until(complete, timeout=TIMEOUT, interval=0.5, what=f"the children's spans in trace {trace}")
    spans = spans_of(receiver, trace)
    by_id = {span["span_id"]: span for span in spans}
    (root,) = [span for span in spans if span["name"] == root_name]
    assert root["parent_span_id"] == ""
    assert root["attributes"][attributes.JOB_KIND] == constants.KIND_IMAGE_LIST_PULL_JOB
    for span in spans:
        if span["name"] in child_roots or span["name"] == "nodeimage.write":
            assert ancestors(span, by_id)[-1] == root_name, f"{span['name']} not under the list job's root"
    for child in children(kube, kube_namespace):
        own = next(
            span for span in spans if span["name"] == f"ImagePullJob {kube_namespace}/{child['metadata']['name']}"
        )
        assert annotation(child).split("-")[2] == own["span_id"], "the child's annotation names its span"
        assert own["attributes"][attributes.CONTAINER_IMAGE_NAME] == child["spec"]["image"]

    code = prepull(
        [
            "trace",
            "imagelistpulljob/base",
            "-n",
            kube_namespace,
            "--kubeconfig",
            str(control_plane.kubeconfig),
            "--spans",
            str(receiver.spans.path),
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert root_name in printed
    for name in names:
        assert name in printed
