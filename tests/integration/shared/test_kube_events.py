"""The event recorder against the real apiserver: repeats aggregate into one Event, volume is rate-limited."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from services.shared.kube import eventcorrelation, events, resources

pytestmark = pytest.mark.integration


def events_about(kube_api, namespace: str, name: str) -> list[dict[str, Any]]:
    return [
        e for e in kube_api.list(resources.EVENTS, namespace=namespace).items if e["involvedObject"]["name"] == name
    ]


def a_recorder(kube_api, **limits) -> events.EventRecorder:
    settings = events.RecorderSettings(limits=eventcorrelation.EventLimits(**limits))
    recorder = events.EventRecorder(kube_api, component="prepull.io/tests", instance="pod-0", settings=settings)
    recorder.start()
    return recorder


def test_repeats_become_one_event_with_a_count(kube_api, kube_namespace):
    involved = kube_api.create(resources.CONFIG_MAPS, {"metadata": {"name": "subject"}}, namespace=kube_namespace)
    recorder = a_recorder(kube_api)
    for _ in range(3):
        recorder.warning(involved, reason="PullFailed", message="image not found")
    recorder.normal(involved, reason="Pulled", message="image pulled")
    recorder.stop()  # writes everything buffered first

    written = {e["reason"]: e for e in events_about(kube_api, kube_namespace, "subject")}
    assert sorted(written) == ["PullFailed", "Pulled"]
    failed = written["PullFailed"]
    assert (failed["count"], failed["type"], failed["message"]) == (3, "Warning", "image not found")
    assert failed["involvedObject"]["uid"] == involved["metadata"]["uid"]
    assert failed["involvedObject"]["kind"] == "ConfigMap"
    assert failed["source"] == {"component": "prepull.io/tests"}
    assert (failed["reportingComponent"], failed["reportingInstance"]) == ("prepull.io/tests", "pod-0")
    assert written["Pulled"]["count"] == 1
    assert (recorder.counters.created, recorder.counters.updated, recorder.counters.failed) == (2, 2, 0)


def test_events_beyond_the_per_object_burst_are_dropped_and_counted(kube_api, kube_namespace):
    noisy = kube_api.create(resources.CONFIG_MAPS, {"metadata": {"name": "noisy"}}, namespace=kube_namespace)
    quiet = kube_api.create(resources.CONFIG_MAPS, {"metadata": {"name": "quiet"}}, namespace=kube_namespace)
    recorder = a_recorder(kube_api, burst_per_object=2, refill_per_object=0.0)
    for i in range(5):
        recorder.normal(noisy, reason="Progress", message=f"step {i}")
    recorder.normal(quiet, reason="Progress", message="step 0")
    recorder.stop()

    assert len(events_about(kube_api, kube_namespace, "noisy")) == 2
    assert len(events_about(kube_api, kube_namespace, "quiet")) == 1
    assert recorder.counters.dropped_rate_limited == 3


def test_events_of_cluster_scoped_objects_go_to_the_default_namespace(kube_api):
    node_name = f"no-such-node-{uuid.uuid4().hex[:8]}"
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": node_name, "uid": str(uuid.uuid4())}}
    recorder = a_recorder(kube_api)
    recorder.normal(node, reason="Inventory", message="reported")
    recorder.stop()
    written = events_about(kube_api, "default", node_name)
    try:
        assert [e["involvedObject"]["kind"] for e in written] == ["Node"]
        assert "namespace" not in written[0]["involvedObject"]
    finally:
        for event in written:
            kube_api.delete(resources.EVENTS, event["metadata"]["name"], namespace="default")


def test_recording_never_blocks_when_the_buffer_is_full(kube_api, kube_namespace):
    involved = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": kube_namespace}}
    settings = events.RecorderSettings(buffer_size=3)
    recorder = events.EventRecorder(kube_api, component="prepull.io/tests", settings=settings)  # not started
    for i in range(10):
        recorder.normal(involved, reason="Burst", message=str(i))
    assert recorder.counters.dropped_buffer_full == 7
    assert recorder.pending() == 3
