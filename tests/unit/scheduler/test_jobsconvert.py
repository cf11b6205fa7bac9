"""Jobs messages to ImagePullJob objects and back."""

from __future__ import annotations

from services.scheduler import jobsconvert
from services.shared.api.imagepulljob import ImagePullJob
from services.shared.gen.prepull.v1 import jobs_pb2, types_pb2


def test_unset_fields_stay_unset() -> None:
    body = jobsconvert.spec_dict(jobs_pb2.JobSpec(image="nginx"))
    assert body == {"image": "nginx", "completionPolicy": {}}


def test_spec_round_trips() -> None:
    spec = jobs_pb2.JobSpec(
        image="nginx:1.25",
        pull_secrets=["regcred"],
        pod_selector=jobs_pb2.LabelSelector(
            match_labels={"app": "web"},
            match_expressions=[jobs_pb2.LabelSelectorRequirement(key="tier", operator="In", values=["a"])],
        ),
        parallelism=0,
        pull_policy=jobs_pb2.PullPolicy(timeout_seconds=60),
        completion_policy=jobs_pb2.CompletionPolicy(type=jobs_pb2.CompletionPolicy.NEVER),
        image_pull_policy=types_pb2.IMAGE_PULL_POLICY_ALWAYS,
    )
    body = jobsconvert.spec_dict(spec)
    assert body["parallelism"] == 0
    assert body["pullPolicy"] == {"timeoutSeconds": 60}
    assert body["completionPolicy"] == {"type": "Never"}
    assert body["imagePullPolicy"] == "Always"
    job = ImagePullJob.from_dict({"metadata": {"name": "j", "namespace": "ns"}, "spec": body})
    assert jobsconvert.job_message(job).spec == spec


def test_trace_id_comes_from_the_annotation() -> None:
    traceparent = "00-" + "a" * 32 + "-" + "b" * 16 + "-01"
    job = ImagePullJob.from_dict(
        {
            "metadata": {"name": "j", "namespace": "ns", "annotations": {"prepull.io/trace-context": traceparent}},
            "spec": {"image": "nginx", "completionPolicy": {}},
        }
    )
    assert jobsconvert.job_message(job).trace_id == "a" * 32
