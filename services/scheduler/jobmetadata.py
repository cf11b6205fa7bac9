"""The marks a job controller puts on a job it takes over, in one metadata merge patch (design §4).

Before acting on a job both controllers make sure it carries their marks: the ImagePullJob controller its
finalizer (a deleted job's tag entries are cleaned up before it goes, upstream §2.2), the ImageListPullJob
controller the `controller-revision-hash` label of its current template (upstream §3), and both the job's
trace-context annotation (`tracecontext`). What is missing is decided from the observed object alone
(`missing_metadata`) and written in one patch carrying the observed resourceVersion (`write_missing`); a job
that has every mark gets no write, so a steady job costs no request.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from services.scheduler import tracecontext
from services.shared.api import constants
from services.shared.kube import objects, patching, resources

__all__ = ["missing_metadata", "write_missing"]


def missing_metadata(
    raw: Mapping[str, Any],
    *,
    traceparent: str,
    finalizer: str | None = None,
    labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The `metadata` merge patch that adds the marks `raw` lacks; {} when it has them all.

    A missing `finalizer` is appended to the observed finalizers (a merge patch replaces a list whole, so the
    others are written back as they were). Each of `labels` whose observed value differs is set. The trace
    context annotation is set to `traceparent` unless the observed one is already a valid `traceparent`.
    Other labels and annotations are not touched.
    """
    metadata = raw.get("metadata") or {}
    patch: dict[str, Any] = {}
    finalizers = list(metadata.get("finalizers") or ())
    if finalizer is not None and finalizer not in finalizers:
        patch["finalizers"] = [*finalizers, finalizer]
    observed_labels = metadata.get("labels") or {}
    changed_labels = {name: value for name, value in (labels or {}).items() if observed_labels.get(name) != value}
    if changed_labels:
        patch["labels"] = changed_labels
    if not tracecontext.is_valid((metadata.get("annotations") or {}).get(constants.ANNOTATION_TRACE_CONTEXT)):
        patch["annotations"] = {constants.ANNOTATION_TRACE_CONTEXT: traceparent}
    return patch


def write_missing(
    api: objects.ObjectApi,
    resource: resources.Resource,
    raw: objects.RawObject,
    *,
    traces: tracecontext.JobTraces,
    finalizer: str | None = None,
    labels: Mapping[str, str] | None = None,
) -> objects.RawObject | None:
    """Patch onto the job `raw` (of `resource`) the marks it lacks; the object written, None when none lacked.

    The trace context is the job's own (`JobTraces.of_job`): its valid annotation, else the root span started
    for it before, else a new root span. The write carries `raw`'s resourceVersion as a precondition.

    Raises:
        errors.Conflict: `raw` is no longer the stored version.
        errors.NotFound: the job is gone.
    """
    traceparent = traces.of_job(raw, resource.kind)
    patch = missing_metadata(raw, traceparent=traceparent, finalizer=finalizer, labels=labels)
    if not patch:
        return None
    return patching.write(api, resource, raw, {"metadata": patch})
