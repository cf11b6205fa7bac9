"""Span attribute keys: OpenTelemetry semantic conventions where one exists, `prepull.*` for our own.

Attribute names are constants so a typo is an import error, not a silently separate attribute in the trace
backend (principle 7). Semantic-convention keys are imported, not retyped, from the stable `attributes`
modules of `opentelemetry-semantic-conventions`, so tools that understand `k8s.node.name` or
`container.image.name` (dashboards, the collector's k8s processor) understand ours.

Never put a credential, a token or a secret's content in an attribute; a secret's `namespace/name` is fine.
"""

from __future__ import annotations

from typing import Final

from opentelemetry.semconv.attributes import container_attributes, error_attributes, k8s_attributes

# --- semantic conventions -------------------------------------------------------------------------------

K8S_NODE_NAME: Final = k8s_attributes.K8S_NODE_NAME
"""`k8s.node.name`: the node a pull happens on, or the node a caller's token is bound to."""
K8S_NAMESPACE_NAME: Final = k8s_attributes.K8S_NAMESPACE_NAME
"""`k8s.namespace.name`: the namespace of the job being worked on."""
K8S_POD_NAME: Final = k8s_attributes.K8S_POD_NAME
CONTAINER_IMAGE_NAME: Final = container_attributes.CONTAINER_IMAGE_NAME
"""`container.image.name`: the image repository, e.g. `docker.io/library/nginx`."""
CONTAINER_IMAGE_TAGS: Final = container_attributes.CONTAINER_IMAGE_TAGS
"""`container.image.tags`: a list, e.g. `["1.25"]`."""
CONTAINER_IMAGE_REPO_DIGESTS: Final = container_attributes.CONTAINER_IMAGE_REPO_DIGESTS
"""`container.image.repo_digests`: a list of `repo@sha256:...` the pulled image is known by."""
ERROR_TYPE: Final = error_attributes.ERROR_TYPE
"""`error.type`: a low-cardinality class of failure (`ImagePullBackOff`, `DeadlineExceeded`, an error class)."""

# --- ours ---------------------------------------------------------------------------------------------

JOB_KIND: Final = "prepull.job.kind"
"""`ImagePullJob` or `ImageListPullJob`."""
JOB_NAME: Final = "prepull.job.name"
JOB_UID: Final = "prepull.job.uid"
"""The job's metadata.uid: the stable key across renames and re-creations with the same name."""
TAG_VERSION: Final = "prepull.tag.version"
"""The NodeImage tag entry's `version`, which the scheduler bumps to request a re-pull."""
PULL_ATTEMPT: Final = "prepull.pull.attempt"
"""1 for the first attempt of a pull, 2 for its first retry, ..."""
IMAGE_SIZE_BYTES: Final = "prepull.image.size_bytes"
"""Size of the pulled image as the runtime reports it."""
PULL_SECRET: Final = "prepull.pull_secret"
"""`namespace/name` of the pull secret whose credentials were used (never their content)."""
CALLER_USERNAME: Final = "prepull.caller.username"
"""The Kubernetes username of an authenticated gRPC caller (e.g. the puller's ServiceAccount)."""
PULL_DURATION_SECONDS: Final = "prepull.pull.duration_seconds"
"""Seconds from a pull's first attempt to its end (its span also holds the wait for a worker slot)."""
