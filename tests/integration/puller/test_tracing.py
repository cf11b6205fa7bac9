"""The puller's task span continues the owning job's trace and holds the CRI call spans (design §4)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from localcluster.images import PushedImage
from services.shared.api import imageref
from tests.integration.puller.conftest import NodeImages, PullerFactory, wait_until
from tests.support.node_fixtures import ContainerdNodes

pytestmark = pytest.mark.integration

OLD_JOB = "00-11111111111111111111111111111111-1111111111111111-01"
NEW_JOB = "00-22222222222222222222222222222222-2222222222222222-01"


def test_task_span_continues_the_newest_owner_and_links_the_others(
    node_images: NodeImages,
    start_puller: PullerFactory,
    containerd_nodes: ContainerdNodes,
    unique_image: Callable[..., PushedImage],
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    pushed = unique_image()
    name = node_images.create()
    start_puller(name, containerd_nodes.a, tracer_provider=provider)
    image, tag = imageref.parse(pushed.reference).nodeimage_entry()
    contexts = [{"uid": "job-old", "traceparent": OLD_JOB}, {"uid": "job-new", "traceparent": NEW_JOB}]
    node_images.set_image(name, image, [{"tag": tag, "imagePullPolicy": "Always", "traceContexts": contexts}])
    assert node_images.wait_for(name, image, tag, ("Succeeded", "Failed"))["phase"] == "Succeeded"

    def task_span_ended() -> bool:
        return any(span.name.startswith("pull ") for span in exporter.get_finished_spans())

    wait_until(task_span_ended, "the task span to end")
    spans = exporter.get_finished_spans()
    task = next(span for span in spans if span.name.startswith("pull "))
    assert task.context is not None and task.parent is not None
    assert f"{task.context.trace_id:032x}" == "2" * 32
    assert f"{task.parent.span_id:016x}" == "2" * 16
    assert [f"{link.context.trace_id:032x}" for link in task.links] == ["1" * 32]
    assert task.attributes is not None and task.attributes["k8s.node.name"] == name
    pull_calls = [span for span in spans if span.name == "/runtime.v1.ImageService/PullImage"]
    assert len(pull_calls) == 1
    assert pull_calls[0].context is not None and pull_calls[0].context.trace_id == task.context.trace_id
