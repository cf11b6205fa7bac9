"""`Credentials.GetPullCredentials`: registry credentials for one image, for the puller of one node (design §3).

The auth interceptor has already checked, before this runs, that the caller presented a token for audience
`prepull.io/credentials` (TokenReview), that it is the puller ServiceAccount, and that the token is bound to a
Pod on a Node. Here the node comes from that binding (never from the request), and the answer is limited to:

* an image whose (name, tag) has a tag entry in *that node's* NodeImage (else PERMISSION_DENIED);
* credentials from the pull secrets named by the jobs owning that tag entry, read with `get` at call time
  (no Secret cache, so a rotated secret takes effect on the next pull);
* matched to the image's registry as the kubelet matches them (`services.shared.credentials`).

A missing or malformed secret is skipped and reported as a Warning event on the job that names it. No
credential appears in a log line, event or error: only secret names do.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import grpc

from services.scheduler.metrics import SchedulerMetrics
from services.scheduler.view import ClusterView
from services.shared import credentials
from services.shared.api import constants, imageref
from services.shared.api.imagepulljob import ImagePullJob
from services.shared.api.nodeimage import NodeImage
from services.shared.auth import caller as caller_module
from services.shared.auth.errors import PermissionDenied
from services.shared.auth.policy import MethodPolicy
from services.shared.gen.prepull.v1 import credentials_pb2, credentials_pb2_grpc, types_pb2
from services.shared.kube import errors, events, objects, resources

__all__ = ["CredentialsServicer", "credentials_rules"]

log = logging.getLogger(__name__)

METHOD = "/prepull.v1.Credentials/GetPullCredentials"


def credentials_rules(puller_username: str) -> dict[str, MethodPolicy]:
    """Who may call `Credentials`: the puller ServiceAccount, with a node-bound token for our audience."""
    return {
        METHOD: MethodPolicy(
            audience=constants.AUDIENCE_CREDENTIALS,
            usernames=frozenset({puller_username}),
            require_node_binding=True,
        )
    }


class CredentialsServicer(credentials_pb2_grpc.CredentialsServicer):
    """Answers from the NodeImage and job caches, reading secrets from the apiserver on each call."""

    def __init__(
        self, *, api: objects.ObjectApi, view: ClusterView, recorder: events.EventRecorder, metrics: SchedulerMetrics
    ) -> None:
        self._api = api
        self._view = view
        self._recorder = recorder
        self._metrics = metrics

    def GetPullCredentials(  # noqa: N802 -- generated gRPC method name
        self, request: credentials_pb2.GetPullCredentialsRequest, context: grpc.ServicerContext
    ) -> credentials_pb2.GetPullCredentialsResponse:
        """See the module docstring."""
        caller = caller_module.current_caller()
        node_name = caller.node_name
        if not node_name:
            raise PermissionDenied("the token is not bound to a Pod on a Node")
        reference = imageref.parse(request.image)
        owners = self._assigning_jobs(node_name, reference)
        if owners is None:
            self._metrics.credentials_requests.labels("refused").inc()
            raise PermissionDenied(f"image {reference.familiar()} is not assigned to node {node_name}")
        secrets = list(self._pull_secrets(owners))
        found = credentials.matching_credentials(reference, secrets)
        self._metrics.credentials_requests.labels("answered").inc()
        log.info(
            "credentials for %s on node %s: %d match(es) from %s",
            reference.familiar(),
            node_name,
            len(found),
            ", ".join(sorted({c.source for c in found})) or "no secret",
        )
        return credentials_pb2.GetPullCredentialsResponse(credentials=[_to_message(c) for c in found])

    def _assigning_jobs(self, node_name: str, reference: imageref.ImageReference) -> list[ImagePullJob] | None:
        """The jobs owning the image's tag entry on the node; None when the image is not assigned there."""
        entry = reference.nodeimage_entry()
        node = self._view.node_images.get(node_name)
        owners = _owner_refs(node, entry.image, entry.tag) if node else None
        if owners is None:
            try:
                node = NodeImage.from_dict(self._api.get(resources.NODE_IMAGES, node_name))
            except errors.NotFound:
                return None
            owners = _owner_refs(node, entry.image, entry.tag)
        if owners is None:
            return None
        jobs = []
        for namespace, name, uid in owners:
            job = self._view.jobs.get(f"{namespace}/{name}")
            if job is None:
                try:
                    job = ImagePullJob.from_dict(self._api.get(resources.IMAGE_PULL_JOBS, name, namespace=namespace))
                except errors.NotFound:
                    continue
            if job.metadata.uid == uid:
                jobs.append(job)
        return jobs

    def _pull_secrets(self, jobs: Iterable[ImagePullJob]) -> Iterable[credentials.PullSecret]:
        seen: set[tuple[str, str]] = set()
        for job in jobs:
            namespace = job.metadata.namespace
            for name in job.spec.pull_secrets or ():
                if (namespace, name) in seen:
                    continue
                seen.add((namespace, name))
                involved = job.to_dict()
                try:
                    yield credentials.pull_secret_from_object(
                        self._api.get(resources.SECRETS, name, namespace=namespace)
                    )
                except errors.NotFound:
                    self._recorder.warning(
                        involved, reason="PullSecretNotFound", message=f"pull secret {namespace}/{name} does not exist"
                    )
                except credentials.InvalidPullSecret as error:
                    self._recorder.warning(involved, reason="InvalidPullSecret", message=str(error))


def _owner_refs(node: NodeImage, image: str, tag: str) -> list[tuple[str, str, str]] | None:
    spec = (node.spec.images or {}).get(image)
    entry = next((t for t in spec.tags if t.tag == tag), None) if spec else None
    if entry is None:
        return None
    return [
        (owner.namespace, owner.name, owner.uid)
        for owner in entry.owner_references or ()
        if owner.kind == constants.KIND_IMAGE_PULL_JOB
    ]


def _to_message(credential: credentials.Credential) -> credentials_pb2.Credential:
    namespace, _, name = credential.source.partition("/")
    return credentials_pb2.Credential(
        username=credential.username,
        password=credential.password,
        server=credential.registry,
        identity_token=credential.identity_token,
        registry_token=credential.registry_token,
        source=types_pb2.ObjectRef(namespace=namespace, name=name),
    )
