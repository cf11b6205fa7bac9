"""`Jobs`: ImagePullJobs over gRPC for platform services, a thin layer over the CRD (jobs.proto, design §2).

The auth interceptor authenticates the caller (TokenReview, audience `--jobs-audience`); each method then asks
SubjectAccessReview whether the caller may do the same with kubectl (`create imagepulljobs` in that
namespace, ...), and performs the equivalent Kubernetes request with the scheduler's identity. Nothing is
stored here: the ImagePullJob object is the source of truth.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import grpc

from services.scheduler import jobsconvert
from services.shared.api import constants
from services.shared.api.imagepulljob import ImagePullJob
from services.shared.auth import caller as caller_module
from services.shared.auth import subjectaccess
from services.shared.auth.policy import MethodPolicy
from services.shared.gen.prepull.v1 import jobs_pb2, jobs_pb2_grpc
from services.shared.kube import errors, objects, resources, watching

__all__ = ["JOBS_SERVICE", "JobsServicer", "MissingField", "UidPreconditionFailed", "jobs_policy"]

log = logging.getLogger(__name__)

JOBS_SERVICE = "prepull.v1.Jobs"
DEFAULT_PAGE_SIZE = 500
WATCH_TIMEOUT_SECONDS = 300


class UidPreconditionFailed(Exception):  # noqa: N818 -- named after the gRPC status it becomes
    """DeleteJob's `uid` no longer names the job (it was re-created); mapped to FAILED_PRECONDITION."""


class MissingField(Exception):  # noqa: N818 -- named after what is wrong; mapped to INVALID_ARGUMENT
    """A request lacks a field the method needs (an empty name must never reach a collection-wide call)."""


def _required(**fields: str) -> None:
    """Raise MissingField naming every empty field, e.g. `namespace and name are required`."""
    missing = [name for name, value in fields.items() if not value]
    if missing:
        raise MissingField(f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} required")


def jobs_policy(audience: str) -> dict[str, MethodPolicy]:
    """Every `Jobs` method needs a token for `audience`; the servicer checks RBAC per request."""
    return {JOBS_SERVICE: MethodPolicy(audience=audience)}


class JobsServicer(jobs_pb2_grpc.JobsServicer):
    """Create, get, list, watch and delete ImagePullJobs on behalf of authorized callers."""

    def __init__(self, *, api: objects.ObjectApi, reviewer: subjectaccess.AccessReviewer) -> None:
        self._api = api
        self._reviewer = reviewer

    def _require(self, verb: str, namespace: str, name: str = "") -> None:
        access = subjectaccess.ResourceAccess(
            verb=verb, resource=constants.PLURAL_IMAGE_PULL_JOBS, group=constants.GROUP, namespace=namespace, name=name
        )
        subjectaccess.require(self._reviewer, caller_module.current_caller(), access)

    def CreateJob(  # noqa: N802 -- generated gRPC method name
        self, request: jobs_pb2.CreateJobRequest, context: grpc.ServicerContext
    ) -> jobs_pb2.Job:
        """Create the job and return it as stored."""
        name_or_prefix = request.name or request.generate_name
        _required(namespace=request.namespace, **{"name (or generate_name)": name_or_prefix}, image=request.spec.image)
        self._require("create", request.namespace)
        created = self._api.create(
            resources.IMAGE_PULL_JOBS, jobsconvert.job_body(request), namespace=request.namespace
        )
        return jobsconvert.job_message(ImagePullJob.from_dict(created))

    def GetJob(  # noqa: N802 -- generated gRPC method name
        self, request: jobs_pb2.GetJobRequest, context: grpc.ServicerContext
    ) -> jobs_pb2.Job:
        """Return one job."""
        self._require("get", request.namespace, request.name)
        raw = self._api.get(resources.IMAGE_PULL_JOBS, request.name, namespace=request.namespace)
        return jobsconvert.job_message(ImagePullJob.from_dict(raw))

    def ListJobs(  # noqa: N802 -- generated gRPC method name
        self, request: jobs_pb2.ListJobsRequest, context: grpc.ServicerContext
    ) -> jobs_pb2.ListJobsResponse:
        """Return one page of the jobs of a namespace (or all), ordered by namespace and name."""
        self._require("list", request.namespace)
        listed = self._api.list(
            resources.IMAGE_PULL_JOBS,
            namespace=request.namespace or None,
            label_selector=request.label_selector or None,
        )
        items = sorted(listed.items, key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
        start = int(request.page_token) if request.page_token.isdigit() else 0
        size = request.page_size or DEFAULT_PAGE_SIZE
        page = items[start : start + size]
        following = start + size
        return jobs_pb2.ListJobsResponse(
            jobs=[jobsconvert.job_message(ImagePullJob.from_dict(raw)) for raw in page],
            next_page_token=str(following) if following < len(items) else "",
        )

    def WatchJob(  # noqa: N802 -- generated gRPC method name
        self, request: jobs_pb2.WatchJobRequest, context: grpc.ServicerContext
    ) -> Iterator[jobs_pb2.JobEvent]:
        """Stream the job's state: INITIAL, then MODIFIED per change, DELETED at the end."""
        self._require("watch", request.namespace, request.name)
        raw = self._api.get(resources.IMAGE_PULL_JOBS, request.name, namespace=request.namespace)
        yield _event(jobs_pb2.JobEvent.INITIAL, raw)
        if request.until_finished and _finished(raw):
            return
        version = str(raw["metadata"].get("resourceVersion") or "")
        while context.is_active():
            stream = self._api.watch(
                resources.IMAGE_PULL_JOBS,
                namespace=request.namespace,
                field_selector=f"metadata.name={request.name}",
                resource_version=version,
                timeout_seconds=WATCH_TIMEOUT_SECONDS,
            )
            context.add_callback(stream.close)
            with stream:
                for event in stream:
                    if event.type == watching.BOOKMARK:
                        version = event.resource_version or version
                        continue
                    version = event.resource_version or version
                    if event.type == watching.DELETED:
                        yield _event(jobs_pb2.JobEvent.DELETED, event.object)
                        return
                    yield _event(jobs_pb2.JobEvent.MODIFIED, event.object)
                    if request.until_finished and _finished(event.object):
                        return

    def DeleteJob(  # noqa: N802 -- generated gRPC method name
        self, request: jobs_pb2.DeleteJobRequest, context: grpc.ServicerContext
    ) -> jobs_pb2.DeleteJobResponse:
        """Delete the job (only if it still has `uid`, when given)."""
        _required(namespace=request.namespace, name=request.name)
        self._require("delete", request.namespace, request.name)
        try:
            self._api.delete(
                resources.IMAGE_PULL_JOBS,
                request.name,
                namespace=request.namespace,
                uid=request.uid or None,
                propagation_policy="Background",
            )
        except errors.Conflict as error:
            raise UidPreconditionFailed(
                f"imagepulljob {request.namespace}/{request.name} no longer has uid {request.uid}"
            ) from error
        return jobs_pb2.DeleteJobResponse()


def _event(kind: jobs_pb2.JobEvent.Type.ValueType, raw: objects.RawObject) -> jobs_pb2.JobEvent:
    return jobs_pb2.JobEvent(type=kind, job=jobsconvert.job_message(ImagePullJob.from_dict(raw)))


def _finished(raw: objects.RawObject) -> bool:
    return bool((raw.get("status") or {}).get("completionTime"))
