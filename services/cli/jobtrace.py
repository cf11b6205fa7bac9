"""Finding a job's trace: the trace id in its `prepull.io/trace-context` annotation.

The scheduler records the job's trace context on the job when it first reconciles it (design §4), as a W3C
`traceparent`; every later span of the job, on any replica and any node, belongs to that trace. So the
annotation is all `prepull trace <job>` needs from the cluster: one GET, through our `kube` package like every
other Kubernetes access, so failures arrive as `errors.KubeError`.

Jobs are named like kubectl names them: `NAME` (an ImagePullJob) or `KIND/NAME` with any of the kind's
names (`ipj/web`, `imagelistpulljob/base-images`).
"""

from __future__ import annotations

from services.shared.api import constants
from services.shared.kube import objects, resources
from services.shared.telemetry import propagation


class NoTraceError(Exception):
    """The job exists but carries no valid trace context (not reconciled yet, or tracing is off)."""


_KINDS: dict[str, resources.Resource] = {
    alias: resource
    for resource, aliases in (
        (
            resources.IMAGE_PULL_JOBS,
            (constants.PLURAL_IMAGE_PULL_JOBS, constants.SINGULAR_IMAGE_PULL_JOB, constants.SHORT_NAME_IMAGE_PULL_JOB),
        ),
        (
            resources.IMAGE_LIST_PULL_JOBS,
            (
                constants.PLURAL_IMAGE_LIST_PULL_JOBS,
                constants.SINGULAR_IMAGE_LIST_PULL_JOB,
                constants.SHORT_NAME_IMAGE_LIST_PULL_JOB,
            ),
        ),
    )
    for alias in aliases
}


def job_resource(reference: str) -> tuple[resources.Resource, str]:
    """The collection and name a `NAME` or `KIND/NAME` job reference means.

    Raises:
        ValueError: an unknown kind, or an empty name.
    """
    kind, slash, name = reference.partition("/")
    if not slash:
        kind, name = constants.SINGULAR_IMAGE_PULL_JOB, reference
    resource = _KINDS.get(kind.lower().split(".", 1)[0])
    if resource is None:
        raise ValueError(f"{kind!r} is not a job kind (use one of {', '.join(sorted(_KINDS))})")
    if not name:
        raise ValueError(f"no job name in {reference!r}")
    return resource, name


def trace_id_of_job(api: objects.ObjectApi, reference: str, *, namespace: str) -> str:
    """The trace id (32 hex digits) recorded on the job `reference` in `namespace`.

    Raises:
        ValueError: `reference` names no job kind.
        errors.NotFound: there is no such job (other `errors.KubeError`s for other failures).
        NoTraceError: the job has no valid trace context annotation.
    """
    resource, name = job_resource(reference)
    job = api.get(resource, name, namespace=namespace)
    annotations = (job.get("metadata") or {}).get("annotations") or {}
    traceparent = annotations.get(constants.ANNOTATION_TRACE_CONTEXT)
    span_context = propagation.span_context_from_traceparent(traceparent)
    if span_context is None:
        state = "has no" if traceparent is None else "has an invalid"
        raise NoTraceError(
            f"{resource.kind} {namespace}/{name} {state} {constants.ANNOTATION_TRACE_CONTEXT} annotation "
            "(the scheduler records it on the first reconcile, when tracing is on)"
        )
    return format(span_context.trace_id, "032x")
