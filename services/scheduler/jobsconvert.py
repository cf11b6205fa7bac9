"""Between the `Jobs` gRPC messages and ImagePullJob objects: field for field, same meaning (jobs.proto).

Unset optional proto fields stay unset in the CRD object, so the CRD schema's defaults apply exactly as for a
manifest applied with kubectl.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from google.protobuf import timestamp_pb2

from services.shared.api import constants
from services.shared.api.imagepulljob import ImagePullJob
from services.shared.api.selectors import LabelSelector
from services.shared.gen.prepull.v1 import jobs_pb2, types_pb2

__all__ = ["job_body", "job_message", "spec_dict"]

_PULL_POLICIES = {
    types_pb2.IMAGE_PULL_POLICY_ALWAYS: "Always",
    types_pb2.IMAGE_PULL_POLICY_IF_NOT_PRESENT: "IfNotPresent",
}
_PULL_POLICY_VALUES = {text: value for value, text in _PULL_POLICIES.items()}
_COMPLETION_TYPES = {jobs_pb2.CompletionPolicy.ALWAYS: "Always", jobs_pb2.CompletionPolicy.NEVER: "Never"}
_COMPLETION_VALUES = {text: value for value, text in _COMPLETION_TYPES.items()}


def spec_dict(spec: jobs_pb2.JobSpec) -> dict[str, Any]:
    """The CRD `spec` for a `JobSpec`."""
    body: dict[str, Any] = {"image": spec.image, "completionPolicy": _completion_dict(spec.completion_policy)}
    if spec.pull_secrets:
        body["pullSecrets"] = list(spec.pull_secrets)
    target = spec.WhichOneof("targets")
    if target == "node_names":
        body["selector"] = {"names": list(spec.node_names.names)}
    elif target == "node_selector":
        body["selector"] = _selector_dict(spec.node_selector)
    elif target == "pod_selector":
        body["podSelector"] = _selector_dict(spec.pod_selector)
    if spec.HasField("parallelism"):
        body["parallelism"] = spec.parallelism
    pull_policy: dict[str, int] = {}
    if spec.pull_policy.HasField("timeout_seconds"):
        pull_policy["timeoutSeconds"] = spec.pull_policy.timeout_seconds
    if spec.pull_policy.HasField("backoff_limit"):
        pull_policy["backoffLimit"] = spec.pull_policy.backoff_limit
    if pull_policy:
        body["pullPolicy"] = pull_policy
    if spec.sandbox_config.labels or spec.sandbox_config.annotations:
        body["sandboxConfig"] = {
            key: dict(value)
            for key, value in (("labels", spec.sandbox_config.labels), ("annotations", spec.sandbox_config.annotations))
            if value
        }
    if spec.image_pull_policy in _PULL_POLICIES:
        body["imagePullPolicy"] = _PULL_POLICIES[spec.image_pull_policy]
    return body


def job_body(request: jobs_pb2.CreateJobRequest) -> dict[str, Any]:
    """The ImagePullJob object to create for a `CreateJobRequest`."""
    metadata: dict[str, Any] = {"namespace": request.namespace}
    if request.name:
        metadata["name"] = request.name
    else:
        metadata["generateName"] = request.generate_name
    if request.labels:
        metadata["labels"] = dict(request.labels)
    if request.annotations:
        metadata["annotations"] = dict(request.annotations)
    return {
        "apiVersion": constants.API_VERSION,
        "kind": constants.KIND_IMAGE_PULL_JOB,
        "metadata": metadata,
        "spec": spec_dict(request.spec),
    }


def job_message(job: ImagePullJob) -> jobs_pb2.Job:
    """The `Job` message for a stored ImagePullJob."""
    meta = job.metadata
    traceparent = (meta.annotations or {}).get(constants.ANNOTATION_TRACE_CONTEXT, "")
    parts = traceparent.split("-")
    message = jobs_pb2.Job(
        namespace=meta.namespace,
        name=meta.name,
        uid=meta.uid,
        labels=dict(meta.labels or {}),
        annotations=dict(meta.annotations or {}),
        generation=meta.generation,
        resource_version=meta.resource_version,
        trace_id=parts[1] if len(parts) == 4 else "",
        spec=_spec_message(job),
    )
    if meta.creation_timestamp is not None:
        message.create_time.CopyFrom(_timestamp(meta.creation_timestamp))
    if meta.deletion_timestamp is not None:
        message.delete_time.CopyFrom(_timestamp(meta.deletion_timestamp))
    status = job.status
    if status is not None:
        message.status.CopyFrom(
            jobs_pb2.JobStatus(
                desired=status.desired,
                active=status.active,
                succeeded=status.succeeded,
                failed=status.failed,
                message=status.message,
                failed_nodes=list(status.failed_nodes or ()),
                observed_generation=status.observed_generation,
                conditions=[
                    jobs_pb2.Condition(
                        type=c.type,
                        status=c.status,
                        reason=c.reason,
                        message=c.message,
                        last_transition_time=_timestamp(c.last_transition_time),
                        observed_generation=c.observed_generation,
                    )
                    for c in status.conditions or ()
                ],
            )
        )
        if status.start_time is not None:
            message.status.start_time.CopyFrom(_timestamp(status.start_time))
        if status.completion_time is not None:
            message.status.completion_time.CopyFrom(_timestamp(status.completion_time))
    return message


def _spec_message(job: ImagePullJob) -> jobs_pb2.JobSpec:
    spec = job.spec
    message = jobs_pb2.JobSpec(image=spec.image, pull_secrets=list(spec.pull_secrets or ()))
    if spec.pod_selector is not None:
        message.pod_selector.CopyFrom(_selector_message(spec.pod_selector))
    elif spec.selector is not None and spec.selector.names is not None:
        message.node_names.names.extend(spec.selector.names)
    elif spec.selector is not None:
        message.node_selector.CopyFrom(_selector_message(spec.selector))
    if isinstance(spec.parallelism, int):
        message.parallelism = spec.parallelism
    elif isinstance(spec.parallelism, str) and spec.parallelism.strip().isdigit():
        message.parallelism = int(spec.parallelism)
    if spec.pull_policy is not None:
        if spec.pull_policy.timeout_seconds is not None:
            message.pull_policy.timeout_seconds = spec.pull_policy.timeout_seconds
        if spec.pull_policy.backoff_limit is not None:
            message.pull_policy.backoff_limit = spec.pull_policy.backoff_limit
    completion = spec.completion_policy
    message.completion_policy.type = _COMPLETION_VALUES.get(completion.type, jobs_pb2.CompletionPolicy.TYPE_UNSPECIFIED)
    if completion.active_deadline_seconds is not None:
        message.completion_policy.active_deadline_seconds = completion.active_deadline_seconds
    if completion.ttl_seconds_after_finished is not None:
        message.completion_policy.ttl_seconds_after_finished = completion.ttl_seconds_after_finished
    if spec.sandbox_config is not None:
        message.sandbox_config.labels.update(spec.sandbox_config.labels or {})
        message.sandbox_config.annotations.update(spec.sandbox_config.annotations or {})
    message.image_pull_policy = _PULL_POLICY_VALUES.get(spec.image_pull_policy, types_pb2.IMAGE_PULL_POLICY_UNSPECIFIED)
    return message


def _completion_dict(policy: jobs_pb2.CompletionPolicy) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if policy.type in _COMPLETION_TYPES:
        body["type"] = _COMPLETION_TYPES[policy.type]
    if policy.HasField("active_deadline_seconds"):
        body["activeDeadlineSeconds"] = policy.active_deadline_seconds
    if policy.HasField("ttl_seconds_after_finished"):
        body["ttlSecondsAfterFinished"] = policy.ttl_seconds_after_finished
    return body


def _selector_dict(selector: jobs_pb2.LabelSelector) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if selector.match_labels:
        body["matchLabels"] = dict(selector.match_labels)
    if selector.match_expressions:
        body["matchExpressions"] = [
            {"key": r.key, "operator": r.operator, **({"values": list(r.values)} if r.values else {})}
            for r in selector.match_expressions
        ]
    return body


def _selector_message(selector: LabelSelector) -> jobs_pb2.LabelSelector:
    return jobs_pb2.LabelSelector(
        match_labels=dict(selector.match_labels or {}),
        match_expressions=[
            jobs_pb2.LabelSelectorRequirement(key=r.key, operator=r.operator, values=list(r.values or ()))
            for r in selector.match_expressions or ()
        ],
    )


def _timestamp(moment: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment)
    return stamp
