"""The marks a job controller puts on a job: only what the observed job lacks, nothing for a marked job."""

from __future__ import annotations

from typing import Any

from services.scheduler import jobmetadata
from services.shared.api import constants

TRACE = constants.ANNOTATION_TRACE_CONTEXT
HASH = constants.LABEL_CONTROLLER_REVISION_HASH
RECORDED = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
NEW = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def _job(**metadata: Any) -> dict[str, Any]:
    return {"metadata": {"name": "web", "namespace": "ns", "uid": "uid-1", **metadata}, "spec": {"image": "nginx"}}


def test_a_new_job_gets_the_finalizer_and_the_trace_context() -> None:
    patch = jobmetadata.missing_metadata(_job(), traceparent=NEW, finalizer=constants.JOB_FINALIZER)
    assert patch == {"finalizers": [constants.JOB_FINALIZER], "annotations": {TRACE: NEW}}


def test_the_finalizer_is_appended_to_the_others_and_added_once() -> None:
    job = _job(finalizers=["other.io/keep"], annotations={TRACE: RECORDED})
    patch = jobmetadata.missing_metadata(job, traceparent=NEW, finalizer=constants.JOB_FINALIZER)
    assert patch == {"finalizers": ["other.io/keep", constants.JOB_FINALIZER]}
    marked = _job(finalizers=[constants.JOB_FINALIZER, "other.io/keep"], annotations={TRACE: RECORDED})
    assert jobmetadata.missing_metadata(marked, traceparent=NEW, finalizer=constants.JOB_FINALIZER) == {}


def test_a_job_with_every_mark_gets_an_empty_patch() -> None:
    job = _job(labels={HASH: "abc", "team": "a"}, annotations={TRACE: RECORDED, "note": "x"})
    assert jobmetadata.missing_metadata(job, traceparent=NEW, labels={HASH: "abc"}) == {}


def test_an_invalid_trace_context_is_replaced_and_other_annotations_are_left_alone() -> None:
    job = _job(finalizers=[constants.JOB_FINALIZER], annotations={TRACE: "garbage", "note": "x"})
    patch = jobmetadata.missing_metadata(job, traceparent=NEW, finalizer=constants.JOB_FINALIZER)
    assert patch == {"annotations": {TRACE: NEW}}


def test_a_label_is_written_when_its_value_differs_and_other_labels_are_left_alone() -> None:
    job = _job(labels={HASH: "old", "team": "a"}, annotations={TRACE: RECORDED})
    assert jobmetadata.missing_metadata(job, traceparent=NEW, labels={HASH: "new"}) == {"labels": {HASH: "new"}}
    unlabelled = _job(annotations={TRACE: RECORDED})
    assert jobmetadata.missing_metadata(unlabelled, traceparent=NEW, labels={HASH: "new"}) == {"labels": {HASH: "new"}}


def test_no_finalizer_is_added_unless_asked_for() -> None:
    patch = jobmetadata.missing_metadata(_job(), traceparent=NEW, labels={HASH: "abc"})
    assert patch == {"labels": {HASH: "abc"}, "annotations": {TRACE: NEW}}


def test_an_object_without_metadata_gets_every_mark() -> None:
    patch = jobmetadata.missing_metadata({}, traceparent=NEW, finalizer=constants.JOB_FINALIZER, labels={HASH: "h"})
    assert patch == {"finalizers": [constants.JOB_FINALIZER], "labels": {HASH: "h"}, "annotations": {TRACE: NEW}}
