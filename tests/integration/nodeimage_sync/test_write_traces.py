"""nodeimage_sync's writes to a job's tag entries are spans of that job's trace (design §4, issue 7).

nodeimage_sync runs as a process exporting OTLP to a receiver in this test. A NodeImage's tag entries carry
their owning jobs' trace contexts, as the scheduler writes them. When nodeimage_sync removes an entry (its job
was deleted) or fails one (the node never answered), its `nodeimage.write` span is a child of the owning job's
context, so `prepull trace <job>` shows what happened to the job's tags; a job whose entries the write leaves
alone gets no span.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from localcluster.otlpreceiver import OtlpReceiver
from localcluster.process import ManagedProcess, wait_until
from services.nodeimage_sync.reconciler import WRITE_ACTION, WRITE_CHANGES
from services.shared.kube import resources
from tests.integration.nodeimage_sync.conftest import SyncHarness
from tests.integration.nodeimage_sync.test_maintenance import a_tag, images, owner, set_images, tags

pytestmark = pytest.mark.integration

SPAN_TIMEOUT = 60.0
GONE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
KEPT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
SILENT = "00-5c1a3e7b9d2f4a6c8e0b1d3f5a7c9e1b-1a2b3c4d5e6f7a8b-01"


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[OtlpReceiver]:
    with OtlpReceiver(tmp_path / "spans.jsonl") as running:
        yield running


@pytest.fixture
def start_sync(sync: SyncHarness, receiver: OtlpReceiver, tmp_path: Path) -> Iterator[Callable[[str], None]]:
    """Start `prepull-nodeimage-sync` (with the given `--response-timeout`) for this test's NodeImages only,
    exporting every span to `receiver`."""
    started: list[ManagedProcess] = []

    def start(response_timeout: str) -> None:
        started.append(_sync_process(sync, receiver, tmp_path, response_timeout))
        started[-1].start()

    yield start
    for process in started:
        process.stop()


def _sync_process(sync: SyncHarness, receiver: OtlpReceiver, tmp_path: Path, response_timeout: str) -> ManagedProcess:
    return ManagedProcess(
        name="nodeimage_sync",
        argv=[
            sys.executable,
            "-m",
            "services.nodeimage_sync",
            f"--kubeconfig={sync.control_plane.kubeconfig}",
            "--grpc-address=127.0.0.1:0",
            "--metrics-address=127.0.0.1:0",
            "--health-address=127.0.0.1:0",
            f"--node-selector={sync.selector}",
            "--leader-elect=false",
            "--creation-delay=1s",
            f"--response-timeout={response_timeout}",
            "--min-requeue=0.5",
            "--requeue-jitter=0.5",
            "--no-auth",
        ],
        log_path=tmp_path / "nodeimage_sync.log",
        cwd=Path(__file__).resolve().parents[3],
        env={
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_SERVICE_NAME": "prepull-nodeimage-sync",
            "OTEL_BSP_SCHEDULE_DELAY": "200",
            "PYTHONUNBUFFERED": "1",
        },
    )


def traced_tag(tag: str, job: dict[str, Any], traceparent: str) -> dict[str, Any]:
    entry = a_tag(tag, owners=[owner(job)])
    entry["traceContexts"] = [{"uid": job["metadata"]["uid"], "traceparent": traceparent}]
    return entry


def writes_in(receiver: OtlpReceiver, traceparent: str) -> list[dict[str, Any]]:
    _, trace_id, span_id, _ = traceparent.split("-")
    return [
        span
        for span in receiver.spans.read()
        if span["name"] == "nodeimage.write" and span["trace_id"] == trace_id and span["parent_span_id"] == span_id
    ]


def test_removing_a_deleted_jobs_tag_is_a_span_of_that_jobs_trace(
    sync: SyncHarness, start_sync: Callable[[str], None], receiver: OtlpReceiver
) -> None:
    start_sync("10m")  # no tag fails for a silent node while the test runs
    gone_job, kept_job = sync.create_job("gone"), sync.create_job("kept")
    name = f"fake-{sync.run_id}"
    sync.create_fake_nodeimage(name)
    set_images(
        sync, name, {"nginx": {"tags": [traced_tag("1.25", gone_job, GONE), traced_tag("1.26", kept_job, KEPT)]}}
    )

    sync.api.delete(resources.IMAGE_PULL_JOBS, "gone", namespace=sync.namespace)
    sync.wait_for(lambda: tags(sync.nodeimage(name)) == ["1.26"], "the deleted job's tag removed")
    wait_until(lambda: bool(writes_in(receiver, GONE)), timeout=SPAN_TIMEOUT, interval=0.5, what="the removal's span")

    (span,) = writes_in(receiver, GONE)
    assert span["service.name"] == "prepull-nodeimage-sync"
    assert span["attributes"][WRITE_ACTION] == "spec"
    assert any("gone" in change and "1.25" in change for change in span["attributes"][WRITE_CHANGES])
    assert writes_in(receiver, KEPT) == [], "the kept job's entry did not change"
    assert images(sync.nodeimage(name))["nginx"]["tags"][0]["traceContexts"][0]["traceparent"] == KEPT


def test_failing_a_silent_nodes_tag_is_a_span_of_the_jobs_trace(
    sync: SyncHarness, start_sync: Callable[[str], None], receiver: OtlpReceiver
) -> None:
    start_sync("3s")
    job = sync.create_job("silent")
    name = f"fake-{sync.run_id}"
    sync.create_fake_nodeimage(name)
    set_images(sync, name, {"nginx": {"tags": [traced_tag("1.25", job, SILENT)]}})

    wait_until(lambda: bool(writes_in(receiver, SILENT)), timeout=SPAN_TIMEOUT, interval=0.5, what="the failure's span")
    (span,) = writes_in(receiver, SILENT)
    assert span["attributes"][WRITE_ACTION] == "status"
    assert any("has not responded" in change for change in span["attributes"][WRITE_CHANGES])
    statuses = ((sync.nodeimage(name) or {}).get("status") or {}).get("imageStatuses") or {}
    assert statuses["nginx"]["tags"][0]["phase"] == "Failed"
