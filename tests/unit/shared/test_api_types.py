"""The API types: JSON round trips, unknown fields, timestamps, defaults, errors, and the CRD contract.

The CRD YAML under deploy/crd/ is the contract (style principle 5): the last part of this file walks every
dataclass field our types read or write and checks it against the CRD's openAPIV3Schema, both ways.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import types
import typing
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.shared.api import (
    conditions,
    constants,
    imagelistpulljob,
    imagepulljob,
    meta,
    nodeimage,
    timefmt,
    wire,
)

CRD_DIR = Path(__file__).resolve().parents[3] / "deploy" / "crd"

# --- Realistic objects, as the apiserver returns them ------------------------------------------------------

MANAGED_FIELDS = [
    {
        "apiVersion": "prepull.io/v1beta1",
        "fieldsType": "FieldsV1",
        "fieldsV1": {"f:spec": {".": {}, "f:image": {}}},
        "manager": "kubectl-client-side-apply",
        "operation": "Update",
        "time": "2025-03-01T09:59:58Z",
    }
]


def a_job() -> dict[str, Any]:
    """A running ImagePullJob with most spec fields set (shaped like upstream's documented example)."""
    return {
        "apiVersion": "prepull.io/v1beta1",
        "kind": "ImagePullJob",
        "metadata": {
            "name": "job-with-always",
            "namespace": "default",
            "uid": "0b4bd3e4-5f4c-4d0a-a2f4-7c1f0c1e9a01",
            "resourceVersion": "48213",
            "generation": 2,
            "creationTimestamp": "2025-03-01T09:59:58Z",
            "labels": {"team": "web"},
            "annotations": {
                constants.ANNOTATION_TRACE_CONTEXT: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
            },
            "finalizers": [constants.JOB_FINALIZER],
            "managedFields": copy.deepcopy(MANAGED_FIELDS),
        },
        "spec": {
            "image": "nginx:1.9.1",
            "parallelism": 10,
            "selector": {
                "matchLabels": {"node-type": "xxx"},
                "matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]}],
            },
            "completionPolicy": {"type": "Always", "activeDeadlineSeconds": 1200, "ttlSecondsAfterFinished": 300},
            "pullPolicy": {"backoffLimit": 3, "timeoutSeconds": 300},
            "pullSecrets": ["secret-name1", "secret-name2"],
            "sandboxConfig": {"labels": {"io.kubernetes.pod.namespace": "default"}, "annotations": {"key": "value"}},
            "imagePullPolicy": "IfNotPresent",
        },
        "status": {
            "startTime": "2025-03-01T10:00:00Z",
            "desired": 3,
            "active": 1,
            "succeeded": 1,
            "failed": 1,
            "message": "job is running, progress 66.7%",
            "failedNodes": ["node-3"],
            "nodeFailures": [{"node": "node-3", "reason": "PullFailed", "message": "manifest unknown"}],
            "observedGeneration": 2,
            "conditions": [
                {
                    "type": "Progressing",
                    "status": "True",
                    "observedGeneration": 2,
                    "lastTransitionTime": "2025-03-01T10:00:00Z",
                    "reason": "Pulling",
                    "message": "1 of 3 nodes pulling",
                },
                {
                    "type": "Failed",
                    "status": "True",
                    "lastTransitionTime": "2025-03-01T10:03:12Z",
                    "reason": "NodesFailed",
                    "message": "node-3: manifest unknown",
                },
            ],
        },
    }


def a_pod_selector_job() -> dict[str, Any]:
    """A Never job by podSelector with a string parallelism, finished fields absent, no status yet."""
    return {
        "apiVersion": "prepull.io/v1beta1",
        "kind": "ImagePullJob",
        "metadata": {"name": "warm-web", "namespace": "web", "uid": "u-2", "resourceVersion": "7"},
        "spec": {
            "image": "registry.example.com:5000/team/app@sha256:" + "a" * 64,
            "parallelism": "2",
            "podSelector": {"matchExpressions": [{"key": "app", "operator": "Exists"}]},
            "completionPolicy": {"type": "Never"},
            "pullPolicy": {"timeoutSeconds": 600, "backoffLimit": 3},
            "imagePullPolicy": "Always",
        },
    }


def a_list_job() -> dict[str, Any]:
    return {
        "apiVersion": "prepull.io/v1beta1",
        "kind": "ImageListPullJob",
        "metadata": {
            "name": "job-with-list",
            "namespace": "default",
            "uid": "9c1f",
            "labels": {constants.LABEL_CONTROLLER_REVISION_HASH: "5f7d8c9b4"},
        },
        "spec": {
            "images": ["nginx:1.9.1", "busybox:1.29.2", "httpd:2.4.38"],
            "parallelism": 10,
            "selector": {"names": ["node-1", "node-2"]},
            "completionPolicy": {"type": "Always", "activeDeadlineSeconds": 1200, "ttlSecondsAfterFinished": 300},
            "pullPolicy": {"backoffLimit": 3, "timeoutSeconds": 300},
        },
        "status": {
            "startTime": "2025-03-01T10:00:00Z",
            "completionTime": "2025-03-01T10:05:00Z",
            "desired": 3,
            "active": 0,
            "completed": 3,
            "succeeded": 2,
            "failedImageStatuses": [
                {
                    "imagePullJob": "job-with-list-x7k2p",
                    "name": "httpd:2.4.38",
                    "message": "Please check for details which nodes failed by "
                    "'kubectl get ImagePullJob job-with-list-x7k2p'.",
                }
            ],
            "conditions": [
                {
                    "type": "Complete",
                    "status": "True",
                    "lastTransitionTime": "2025-03-01T10:05:00Z",
                    "reason": "AllJobsFinished",
                    "message": "",
                }
            ],
        },
    }


def a_node_image() -> dict[str, Any]:
    """A NodeImage shared by two jobs, mid-pull, with our trace contexts and byte progress."""
    owner = {
        "apiVersion": "prepull.io/v1beta1",
        "kind": "ImagePullJob",
        "name": "job-with-always",
        "namespace": "default",
        "uid": "0b4bd3e4-5f4c-4d0a-a2f4-7c1f0c1e9a01",
    }
    other_owner = {**owner, "name": "other", "uid": "1c5ce4f5"}
    return {
        "apiVersion": "prepull.io/v1beta1",
        "kind": "NodeImage",
        "metadata": {
            "name": "node-1",
            "uid": "ni-1",
            "resourceVersion": "99",
            "generation": 5,
            "creationTimestamp": "2025-03-01T09:00:00Z",
            "labels": {"kubernetes.io/hostname": "node-1", "kubernetes.io/os": "linux"},
        },
        "spec": {
            "images": {
                "nginx": {
                    "pullSecrets": [{"namespace": "default", "name": "secret-name1"}],
                    "sandboxConfig": {"labels": {"io.kubernetes.pod.namespace": "default"}},
                    "tags": [
                        {
                            "tag": "1.9.1",
                            "createdAt": "2025-03-01T10:00:01Z",
                            "pullPolicy": {
                                "timeoutSeconds": 300,
                                "backoffLimit": 3,
                                "ttlSecondsAfterFinished": 1712,
                                "activeDeadlineSeconds": 1200,
                            },
                            "ownerReferences": [owner, other_owner],
                            "version": 1,
                            "imagePullPolicy": "IfNotPresent",
                            "traceContexts": [
                                {
                                    "uid": owner["uid"],
                                    "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                                },
                                {
                                    "uid": other_owner["uid"],
                                    "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                                    "tracestate": "vendor=abc",
                                },
                            ],
                        },
                        {
                            "tag": "sha256:" + "b" * 64,
                            "createdAt": "2025-03-01T10:00:01Z",
                            "pullPolicy": {"ttlSecondsAfterFinished": 300},
                        },
                    ],
                },
                "ubuntu": {"tags": [{"tag": "latest", "pullPolicy": {"ttlSecondsAfterFinished": 300}}]},
            }
        },
        "status": {
            "desired": 3,
            "succeeded": 1,
            "failed": 0,
            "pulling": 1,
            "waiting": 1,
            "observedGeneration": 5,
            "imageStatuses": {
                "nginx": {
                    "tags": [
                        {
                            "tag": "1.9.1",
                            "phase": "Pulling",
                            "progress": 40,
                            "startTime": "2025-03-01T10:00:02.25Z",
                            "version": 1,
                            "pulledBytes": 41943040,
                            "totalBytes": 104857600,
                        },
                        {
                            "tag": "sha256:" + "b" * 64,
                            "phase": "Succeeded",
                            "progress": 100,
                            "startTime": "2025-03-01T10:00:02Z",
                            "completionTime": "2025-03-01T10:00:09Z",
                            "imageID": "nginx@sha256:" + "c" * 64,
                        },
                    ]
                },
                "ubuntu": {"tags": [{"tag": "latest", "phase": "Waiting"}]},
            },
        },
    }


SAMPLES = [
    pytest.param(imagepulljob.ImagePullJob, a_job, id="imagepulljob-running"),
    pytest.param(imagepulljob.ImagePullJob, a_pod_selector_job, id="imagepulljob-podselector-never"),
    pytest.param(imagelistpulljob.ImageListPullJob, a_list_job, id="imagelistpulljob-finished"),
    pytest.param(nodeimage.NodeImage, a_node_image, id="nodeimage-shared-tag"),
]

# --- Round trips -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "sample"), SAMPLES)
def test_round_trip_is_exact(kind: type[wire.WireObject], sample: Any) -> None:
    data = sample()
    obj = kind.from_dict(data)
    assert obj.to_dict() == data
    json.dumps(obj.to_dict())  # plain JSON, nothing Python-specific left


@pytest.mark.parametrize(("kind", "sample"), SAMPLES)
def test_parsed_object_survives_a_second_round_trip(kind: type[wire.WireObject], sample: Any) -> None:
    obj = kind.from_dict(sample())
    assert kind.from_dict(obj.to_dict()) == obj


def test_job_fields_are_typed() -> None:
    job = imagepulljob.ImagePullJob.from_dict(a_job())
    assert job.metadata.annotations is not None
    assert job.metadata.annotations[constants.ANNOTATION_TRACE_CONTEXT].startswith("00-4bf9")
    assert job.spec.image == "nginx:1.9.1"
    assert job.spec.parallelism == 10
    assert job.spec.pull_secrets == ("secret-name1", "secret-name2")
    assert job.spec.selector is not None
    assert job.spec.selector.names is None
    assert job.spec.selector.match_labels == {"node-type": "xxx"}
    assert job.spec.selector.match_expressions is not None
    assert job.spec.selector.match_expressions[0].values == ("a", "b")
    assert job.spec.completion_policy.type == imagepulljob.CompletionPolicyType.ALWAYS
    assert job.spec.completion_policy.active_deadline_seconds == 1200
    assert job.spec.pull_policy == imagepulljob.PullPolicy(timeout_seconds=300, backoff_limit=3)
    assert job.status is not None
    assert job.status.start_time == datetime(2025, 3, 1, 10, 0, tzinfo=UTC)
    assert job.status.node_failures == (
        imagepulljob.NodeFailure(node="node-3", reason="PullFailed", message="manifest unknown"),
    )
    failed = conditions.find_condition(job.status.conditions, conditions.ConditionType.FAILED)
    assert failed is not None
    assert failed.status == conditions.ConditionStatus.TRUE
    assert failed.observed_generation == 0


def test_node_image_fields_are_typed() -> None:
    image = nodeimage.NodeImage.from_dict(a_node_image())
    assert image.spec.images is not None
    nginx = image.spec.images["nginx"]
    shared = nginx.tags[0]
    assert shared.version == 1
    assert shared.pull_policy is not None
    assert shared.pull_policy.active_deadline_seconds == 1200
    assert [ref.name for ref in shared.owner_references or ()] == ["job-with-always", "other"]
    assert shared.trace_contexts is not None
    assert shared.trace_contexts[1] == nodeimage.TraceContext(
        uid="1c5ce4f5", traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", tracestate="vendor=abc"
    )
    assert nginx.pull_secrets == (nodeimage.ReferenceObject(namespace="default", name="secret-name1"),)
    assert image.status is not None
    assert image.status.image_statuses is not None
    pulling, done = image.status.image_statuses["nginx"].tags
    assert pulling.phase == nodeimage.ImagePullPhase.PULLING
    assert (pulling.pulled_bytes, pulling.total_bytes) == (41943040, 104857600)
    assert pulling.start_time == datetime(2025, 3, 1, 10, 0, 2, 250000, tzinfo=UTC)
    assert done.image_id == "nginx@sha256:" + "c" * 64
    assert done.version == 0  # absent in JSON, like Go's int64 without a pointer


def test_seed_patch_parses_as_a_node_image_spec() -> None:
    """The seed's `kubectl patch` body (design §1) is a valid spec with no createdAt and no version."""
    patch = {
        "spec": {"images": {"ubuntu": {"tags": [{"tag": "latest", "pullPolicy": {"ttlSecondsAfterFinished": 300}}]}}}
    }
    spec = nodeimage.NodeImageSpec.from_dict(patch["spec"])
    assert spec.images is not None
    tag = spec.images["ubuntu"].tags[0]
    assert (tag.tag, tag.created_at, tag.version) == ("latest", None, 0)
    assert tag.pull_policy == nodeimage.ImageTagPullPolicy(ttl_seconds_after_finished=300)
    assert spec.to_dict() == patch["spec"]


def test_empty_node_image_from_upstream_docs_gains_only_go_zero_counters() -> None:
    """Upstream's documented empty NodeImage predates `waiting`; we write it as 0, as today's Go type does."""
    upstream: dict[str, Any] = {
        "apiVersion": "prepull.io/v1beta1",
        "kind": "NodeImage",
        "metadata": {"name": "xxx", "labels": {"kubernetes.io/arch": "amd64", "kubernetes.io/os": "linux"}},
        "spec": {},
        "status": {"desired": 0, "failed": 0, "pulling": 0, "succeeded": 0},
    }
    expected = copy.deepcopy(upstream)
    expected["status"]["waiting"] = 0
    assert nodeimage.NodeImage.from_dict(upstream).to_dict() == expected


def test_a_new_object_serializes_with_group_version_and_kind() -> None:
    job = imagepulljob.ImagePullJob(
        metadata=meta.ObjectMeta(name="j", namespace="ns"),
        spec=imagepulljob.ImagePullJobSpec(image="nginx"),
    )
    assert job.to_dict() == {
        "apiVersion": "prepull.io/v1beta1",
        "kind": "ImagePullJob",
        "metadata": {"name": "j", "namespace": "ns"},
        "spec": {"completionPolicy": {}, "image": "nginx"},
    }
    assert nodeimage.NodeImage(metadata=meta.ObjectMeta(name="n")).to_dict() == {
        "apiVersion": "prepull.io/v1beta1",
        "kind": "NodeImage",
        "metadata": {"name": "n"},
        "spec": {},
    }


# --- Unknown fields at every level -------------------------------------------------------------------------

UNKNOWN_KEY = "zzFutureField"


def _unwrap_optional(annotation: Any) -> Any:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        return members[0] if len(members) == 1 else annotation
    return annotation


def _inject_unknown(annotation: Any, value: Any, counter: list[int]) -> None:
    """Add UNKNOWN_KEY to every JSON object in `value` that one of our types models, recursively."""
    annotation = _unwrap_optional(annotation)
    origin = typing.get_origin(annotation)
    if origin is tuple:
        for element in value:
            _inject_unknown(typing.get_args(annotation)[0], element, counter)
    elif origin is Mapping:
        for element in value.values():
            _inject_unknown(typing.get_args(annotation)[1], element, counter)
    elif isinstance(annotation, type) and issubclass(annotation, wire.WireObject):
        for wire_field in wire.wire_fields(annotation):
            if wire_field.json_name in value:
                _inject_unknown(wire_field.annotation, value[wire_field.json_name], counter)
        value[UNKNOWN_KEY] = {"nested": [1, {"deep": True}], "at": counter[0]}
        counter[0] += 1


def _extras(obj: Any) -> list[Mapping[str, Any]]:
    """Every `extra` mapping in a parsed object tree."""
    if isinstance(obj, wire.WireObject):
        found = [obj.extra]
        for wire_field in wire.wire_fields(type(obj)):
            found += _extras(getattr(obj, wire_field.attribute))
        return found
    if isinstance(obj, tuple):
        return [extra for element in obj for extra in _extras(element)]
    if isinstance(obj, Mapping):
        return [extra for element in obj.values() for extra in _extras(element)]
    return []


@pytest.mark.parametrize(("kind", "sample"), SAMPLES)
def test_unknown_fields_survive_at_every_level(kind: type[wire.WireObject], sample: Any) -> None:
    data = sample()
    counter = [0]
    _inject_unknown(kind, data, counter)
    assert counter[0] >= 5, "the sample should exercise several nesting levels"
    obj = kind.from_dict(data)
    extras = [extra for extra in _extras(obj) if UNKNOWN_KEY in extra]
    assert len(extras) == counter[0], "every level's unknown key lands in that level's `extra`"
    assert obj.to_dict() == data


def test_unknown_metadata_fields_are_kept_but_not_modelled() -> None:
    job = imagepulljob.ImagePullJob.from_dict(a_job())
    assert job.metadata.extra == {"managedFields": MANAGED_FIELDS}


def test_extra_never_overrides_a_modelled_field() -> None:
    spec = imagepulljob.PullPolicy(timeout_seconds=None, extra={"timeoutSeconds": 5, "other": 1})
    assert spec.to_dict() == {"other": 1}


# --- Defaults: absent versus present ---------------------------------------------------------------------


def test_absent_optional_fields_stay_absent() -> None:
    spec = imagepulljob.ImagePullJobSpec.from_dict({"image": "nginx", "completionPolicy": {}})
    assert spec.pull_policy is None
    assert spec.parallelism is None
    assert spec.pull_secrets is None
    assert spec.image_pull_policy == ""
    assert spec.completion_policy == imagepulljob.CompletionPolicy()
    assert spec.to_dict() == {"image": "nginx", "completionPolicy": {}}


def test_present_values_equal_to_defaults_are_kept() -> None:
    data = {
        "image": "nginx",
        "parallelism": 1,
        "pullPolicy": {"timeoutSeconds": 600, "backoffLimit": 3},
        "completionPolicy": {"type": "Always"},
        "imagePullPolicy": "IfNotPresent",
    }
    assert imagepulljob.ImagePullJobSpec.from_dict(data).to_dict() == data


def test_zero_values_behind_pointers_are_kept() -> None:
    data = {"image": "nginx", "parallelism": 0, "completionPolicy": {"ttlSecondsAfterFinished": 0}}
    spec = imagepulljob.ImagePullJobSpec.from_dict(data)
    assert spec.parallelism == 0
    assert spec.to_dict() == data


def test_an_empty_list_differs_from_an_absent_one() -> None:
    """Upstream's immutability check tells `pullSecrets: []` from no pullSecrets (upstream §1.8)."""
    empty = imagepulljob.ImagePullJobSpec.from_dict({"image": "nginx", "pullSecrets": []})
    absent = imagepulljob.ImagePullJobSpec.from_dict({"image": "nginx"})
    assert empty.pull_secrets == ()
    assert absent.pull_secrets is None
    assert empty != absent
    assert empty.to_dict()["pullSecrets"] == []
    assert "pullSecrets" not in absent.to_dict()


def test_status_counters_are_always_written_like_go() -> None:
    status = imagepulljob.ImagePullJobStatus(desired=0)
    assert status.to_dict() == {"desired": 0, "active": 0, "succeeded": 0, "failed": 0}


def test_go_omitempty_scalars_read_zero_when_absent_and_are_not_written_when_zero() -> None:
    tag = nodeimage.ImageTagSpec.from_dict({"tag": "latest", "version": 0})
    assert tag.version == 0
    assert tag.to_dict() == {"tag": "latest"}
    assert nodeimage.ImageTagSpec(tag="latest", version=2).to_dict() == {"tag": "latest", "version": 2}


def test_null_reads_as_absent() -> None:
    spec = imagepulljob.ImagePullJobSpec.from_dict({"image": "nginx", "pullPolicy": None, "parallelism": None})
    assert spec.pull_policy is None
    assert spec.parallelism is None


def test_parallelism_keeps_int_or_string() -> None:
    as_string = imagepulljob.ImagePullJobSpec.from_dict({"image": "x", "parallelism": "3"})
    as_int = imagepulljob.ImagePullJobSpec.from_dict({"image": "x", "parallelism": 3})
    assert (as_string.parallelism, as_int.parallelism) == ("3", 3)
    assert as_string.to_dict()["parallelism"] == "3"


# --- Timestamps ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("2025-03-01T10:00:00Z", datetime(2025, 3, 1, 10, tzinfo=UTC), id="go-seconds"),
        pytest.param("2025-03-01T10:00:00.5Z", datetime(2025, 3, 1, 10, 0, 0, 500000, tzinfo=UTC), id="fraction"),
        pytest.param(
            "2025-03-01T10:00:00.123456789Z", datetime(2025, 3, 1, 10, 0, 0, 123456, tzinfo=UTC), id="nanoseconds"
        ),
        pytest.param("2025-03-01T12:30:00+02:30", datetime(2025, 3, 1, 10, tzinfo=UTC), id="offset"),
        pytest.param("2025-03-01t10:00:00z", datetime(2025, 3, 1, 10, tzinfo=UTC), id="lowercase"),
    ],
)
def test_parse_time_gives_aware_utc(text: str, expected: datetime) -> None:
    parsed = timefmt.parse_time(text)
    assert parsed == expected
    assert parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("moment", "text"),
    [
        pytest.param(datetime(2025, 3, 1, 10, tzinfo=UTC), "2025-03-01T10:00:00Z", id="seconds"),
        pytest.param(datetime(2025, 3, 1, 10, 0, 0, 250000, tzinfo=UTC), "2025-03-01T10:00:00.25Z", id="fraction"),
        pytest.param(
            datetime(2025, 3, 1, 11, tzinfo=timezone(timedelta(hours=1))), "2025-03-01T10:00:00Z", id="to-utc"
        ),
    ],
)
def test_format_time_writes_utc_z(moment: datetime, text: str) -> None:
    assert timefmt.format_time(moment) == text


@pytest.mark.parametrize("text", ["2025-03-01T10:00:00Z", "2025-03-01T10:00:00.25Z", "1970-01-01T00:00:00Z"])
def test_time_round_trips(text: str) -> None:
    assert timefmt.format_time(timefmt.parse_time(text)) == text


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        timefmt.format_time(datetime(2025, 3, 1, 10))


@pytest.mark.parametrize("text", ["2025-03-01", "2025-03-01 10:00:00Z", "2025-03-01T10:00:00", "yesterday", ""])
def test_non_rfc3339_text_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="RFC 3339"):
        timefmt.parse_time(text)


def test_a_bad_timestamp_in_an_object_names_its_path() -> None:
    data = a_node_image()
    data["spec"]["images"]["nginx"]["tags"][0]["createdAt"] = "last tuesday"
    with pytest.raises(wire.InvalidObjectError) as caught:
        nodeimage.NodeImage.from_dict(data)
    assert caught.value.path == "spec.images['nginx'].tags[0].createdAt"


# --- Invalid objects ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "mutate", "path", "problem"),
    [
        pytest.param(
            imagepulljob.ImagePullJob,
            lambda d: d["spec"].pop("image"),
            "spec.image",
            "required field is missing",
            id="missing-image",
        ),
        pytest.param(
            imagepulljob.ImagePullJob,
            lambda d: d["spec"].update(parallelism=1.5),
            "spec.parallelism",
            "expected an integer or a string, got a number",
            id="float-parallelism",
        ),
        pytest.param(
            imagepulljob.ImagePullJob,
            lambda d: d["status"].update(desired=True),
            "status.desired",
            "expected an integer, got a boolean",
            id="bool-is-not-int",
        ),
        pytest.param(
            imagepulljob.ImagePullJob,
            lambda d: d["spec"].update(pullSecrets="secret-name1"),
            "spec.pullSecrets",
            "expected a list, got a string",
            id="string-for-list",
        ),
        pytest.param(
            nodeimage.NodeImage,
            lambda d: d["spec"]["images"]["ubuntu"]["tags"][0].pop("tag"),
            "spec.images['ubuntu'].tags[0].tag",
            "required field is missing",
            id="missing-tag",
        ),
        pytest.param(
            nodeimage.NodeImage,
            lambda d: d["status"]["imageStatuses"]["nginx"]["tags"][1].update(phase=None),
            "status.imageStatuses['nginx'].tags[1].phase",
            "required field is missing",
            id="null-phase",
        ),
    ],
)
def test_invalid_objects_are_refused_with_the_path(kind: Any, mutate: Any, path: str, problem: str) -> None:
    data = a_job() if kind is imagepulljob.ImagePullJob else a_node_image()
    mutate(data)
    with pytest.raises(wire.InvalidObjectError) as caught:
        kind.from_dict(data)
    assert (caught.value.path, caught.value.problem) == (path, problem)


def test_a_non_object_is_refused() -> None:
    with pytest.raises(wire.InvalidObjectError, match="expected an object, got a list"):
        nodeimage.NodeImage.from_dict([])  # type: ignore[arg-type]


# --- Value semantics ---------------------------------------------------------------------------------------


def test_objects_are_frozen() -> None:
    job = imagepulljob.ImagePullJob.from_dict(a_job())
    with pytest.raises(dataclasses.FrozenInstanceError):
        job.spec.image = "other"  # type: ignore[misc]


def test_parsing_and_serializing_copy() -> None:
    data = a_job()
    job = imagepulljob.ImagePullJob.from_dict(data)
    data["metadata"]["managedFields"][0]["manager"] = "someone-else"
    data["spec"]["pullSecrets"].append("sneaky")
    assert job.metadata.extra["managedFields"][0]["manager"] == "kubectl-client-side-apply"
    out = job.to_dict()
    out["metadata"]["managedFields"].clear()
    out["spec"]["selector"]["matchLabels"]["node-type"] = "changed"
    assert job.to_dict() == a_job()


def test_list_job_child_spec_carries_the_template() -> None:
    data = a_list_job()
    data["spec"][UNKNOWN_KEY] = "template field from a newer schema"
    spec = imagelistpulljob.ImageListPullJob.from_dict(data).spec
    child = spec.child_spec("busybox:1.29.2")
    assert child.image == "busybox:1.29.2"
    assert child.selector == spec.selector
    assert child.pull_policy == spec.pull_policy
    assert child.completion_policy == spec.completion_policy
    assert child.to_dict() == {
        "image": "busybox:1.29.2",
        "parallelism": 10,
        "selector": {"names": ["node-1", "node-2"]},
        "completionPolicy": {"type": "Always", "activeDeadlineSeconds": 1200, "ttlSecondsAfterFinished": 300},
        "pullPolicy": {"backoffLimit": 3, "timeoutSeconds": 300},
        UNKNOWN_KEY: "template field from a newer schema",
    }
    assert child.template() == imagepulljob.ImagePullJobSpec.from_template(spec, image="x").template()


# --- Conditions ------------------------------------------------------------------------------------------

T0 = datetime(2025, 3, 1, 10, tzinfo=UTC)
T1 = T0 + timedelta(minutes=5)


def _condition(status: str, at: datetime, reason: str = "R") -> conditions.Condition:
    return conditions.Condition(type="Complete", status=status, last_transition_time=at, reason=reason, message="m")


def test_set_condition_adds_a_missing_type() -> None:
    progressing = dataclasses.replace(_condition("True", T0), type="Progressing")
    result = conditions.set_condition((progressing,), _condition("False", T1))
    assert [c.type for c in result] == ["Progressing", "Complete"]


def test_set_condition_keeps_transition_time_when_status_is_unchanged() -> None:
    result = conditions.set_condition((_condition("False", T0, reason="Old"),), _condition("False", T1, reason="New"))
    assert result == (_condition("False", T0, reason="New"),)


def test_set_condition_moves_transition_time_when_status_changes() -> None:
    result = conditions.set_condition((_condition("False", T0),), _condition("True", T1))
    assert result == (_condition("True", T1),)


def test_find_condition_tolerates_absent_conditions() -> None:
    assert conditions.find_condition(None, "Complete") is None


# --- The CRD contract -------------------------------------------------------------------------------------

KINDS = {
    "prepull.io_imagepulljobs.yaml": (
        imagepulljob.ImagePullJob,
        constants.KIND_IMAGE_PULL_JOB,
        constants.PLURAL_IMAGE_PULL_JOBS,
        constants.SINGULAR_IMAGE_PULL_JOB,
        constants.SHORT_NAME_IMAGE_PULL_JOB,
        "Namespaced",
    ),
    "prepull.io_imagelistpulljobs.yaml": (
        imagelistpulljob.ImageListPullJob,
        constants.KIND_IMAGE_LIST_PULL_JOB,
        constants.PLURAL_IMAGE_LIST_PULL_JOBS,
        constants.SINGULAR_IMAGE_LIST_PULL_JOB,
        constants.SHORT_NAME_IMAGE_LIST_PULL_JOB,
        "Namespaced",
    ),
    "prepull.io_nodeimages.yaml": (
        nodeimage.NodeImage,
        constants.KIND_NODE_IMAGE,
        constants.PLURAL_NODE_IMAGES,
        constants.SINGULAR_NODE_IMAGE,
        constants.SHORT_NAME_NODE_IMAGE,
        "Cluster",
    ),
}


def _crd(file_name: str) -> dict[str, Any]:
    crd: dict[str, Any] = yaml.safe_load((CRD_DIR / file_name).read_text())
    return crd


def _schema(file_name: str) -> dict[str, Any]:
    (version,) = _crd(file_name)["spec"]["versions"]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


def test_the_crds_are_the_three_kinds() -> None:
    assert sorted(p.name for p in CRD_DIR.glob("*.yaml")) == sorted(KINDS)


@pytest.mark.parametrize("file_name", sorted(KINDS))
def test_crd_names_match_constants(file_name: str) -> None:
    _, kind, plural, singular, short_name, scope = KINDS[file_name]
    spec = _crd(file_name)["spec"]
    assert _crd(file_name)["metadata"]["name"] == f"{plural}.{constants.GROUP}"
    assert spec["group"] == constants.GROUP
    assert spec["scope"] == scope
    assert spec["names"]["kind"] == kind
    assert spec["names"]["plural"] == plural
    assert spec["names"]["singular"] == singular
    assert spec["names"]["shortNames"] == [short_name]
    assert spec["names"]["categories"] == [constants.CATEGORY]
    assert [v["name"] for v in spec["versions"]] == [constants.VERSION]


def _contract_problems(annotation: Any, schema: Mapping[str, Any], path: str) -> list[str]:
    """Where a type and a schema disagree: missing properties, required flags, JSON types."""
    annotation = _unwrap_optional(annotation)
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        ok = schema.get("x-kubernetes-int-or-string") is True
        return [] if ok else [f"{path}: int|str field needs x-kubernetes-int-or-string"]
    if origin is tuple:
        if schema.get("type") != "array":
            return [f"{path}: a list in our types, {schema.get('type')} in the schema"]
        return _contract_problems(typing.get_args(annotation)[0], schema["items"], f"{path}[]")
    if origin is Mapping:
        if schema.get("type") != "object" or "additionalProperties" not in schema:
            return [f"{path}: a map in our types, not a map in the schema"]
        return _contract_problems(typing.get_args(annotation)[1], schema["additionalProperties"], f"{path}{{}}")
    if isinstance(annotation, type) and issubclass(annotation, wire.WireObject):
        return _object_problems(annotation, schema, path)
    expected = {
        str: ("string", None),
        int: ("integer", None),
        bool: ("boolean", None),
        datetime: ("string", "date-time"),
    }
    json_type, json_format = expected[annotation]
    if schema.get("type") != json_type or (json_format and schema.get("format") != json_format):
        return [
            f"{path}: {annotation.__name__} in our types, {schema.get('type')}/{schema.get('format')} in the schema"
        ]
    return []


def _object_problems(cls: type[wire.WireObject], schema: Mapping[str, Any], path: str) -> list[str]:
    if schema.get("type") != "object":
        return [f"{path}: an object in our types, {schema.get('type')} in the schema"]
    properties = schema.get("properties")
    if properties is None:
        # Only `metadata` may be an opaque object: the apiserver validates ObjectMeta itself.
        return [] if path == "metadata" else [f"{path}: the schema does not describe this object's fields"]
    problems: list[str] = []
    required = set(schema.get("required", ()))
    ours = {f.json_name: f for f in wire.wire_fields(cls)}
    for name, wire_field in ours.items():
        field_path = f"{path}.{name}" if path else name
        if name not in properties:
            problems.append(f"{field_path}: our types read/write it, the schema lacks it (it would be pruned)")
            continue
        if wire_field.required != (name in required):
            problems.append(
                f"{field_path}: required={wire_field.required} in our types, {name in required} in the schema"
            )
        problems += _contract_problems(wire_field.annotation, properties[name], field_path)
    problems += [f"{path}.{name}: in the schema, not modelled by our types" for name in properties if name not in ours]
    return problems


@pytest.mark.parametrize("file_name", sorted(KINDS))
def test_types_and_crd_schema_agree(file_name: str) -> None:
    kind = KINDS[file_name][0]
    assert _contract_problems(kind, _schema(file_name), "") == []


def test_the_contract_check_can_fail() -> None:
    """The walk above really compares: a renamed, a dropped and a retyped field are all reported."""
    schema = copy.deepcopy(_schema("prepull.io_nodeimages.yaml"))
    tag_schema = schema["properties"]["spec"]["properties"]["images"]["additionalProperties"]["properties"]["tags"]
    tag_properties = tag_schema["items"]["properties"]
    tag_properties["trace_contexts"] = tag_properties.pop("traceContexts")
    tag_properties["version"] = {"type": "string"}
    del schema["properties"]["status"]["required"]
    problems = _contract_problems(nodeimage.NodeImage, schema, "")
    assert problems == [
        "spec.images{}.tags[].version: int in our types, string/None in the schema",
        "spec.images{}.tags[].traceContexts: our types read/write it, the schema lacks it (it would be pruned)",
        "spec.images{}.tags[].trace_contexts: in the schema, not modelled by our types",
        "status.desired: required=True in our types, False in the schema",
    ]
