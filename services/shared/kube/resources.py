"""Which REST collection an object lives in: one `Resource` per kind we touch, defined once.

The apiserver addresses objects by group, version, plural resource name and scope, not by kind, and the
core group (`/api/v1`) is spelled differently from every other (`/apis/<group>/<version>`). Keeping these
facts in descriptors lets one generic code path (`kubeapi.KubeApi`) serve our CRDs and the built-in kinds
alike, returning plain dicts, instead of one typed client class per kind. Our CRD names come from
`services.shared.api.constants`, the one place they are defined.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from services.shared.api import constants


@dataclass(frozen=True)
class Resource:
    """A REST collection: enough to build every URL for its objects.

    Attributes:
        group: API group; "" for the core group.
        version: API version within the group, e.g. "v1".
        plural: the resource name in URLs, e.g. "nodeimages".
        kind: the `kind` of its objects, e.g. "NodeImage".
        namespaced: whether objects live in a namespace.
    """

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        """`apiVersion` of the objects: "v1" for core, "<group>/<version>" otherwise."""
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, *, namespace: str | None = None, name: str | None = None, subresource: str | None = None) -> str:
        """The URL path of the collection, or of one object (and its subresource).

        Args:
            namespace: required for namespaced resources when addressing one object; None lists across
                all namespaces. Ignored-by-mistake is an error: it must be None for cluster-scoped ones.
            name: the object's name; None addresses the collection.
            subresource: e.g. "status"; needs `name`.

        Raises:
            ValueError: the arguments do not fit the resource's scope.
        """
        self._check_scope(namespace=namespace, name=name, subresource=subresource)
        root = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        parts = [root]
        if namespace is not None:
            parts.append(f"namespaces/{quote(namespace, safe='')}")
        parts.append(self.plural)
        if name is not None:
            parts.append(quote(name, safe=""))
        if subresource is not None:
            parts.append(subresource)
        return "/".join(parts)

    def _check_scope(self, *, namespace: str | None, name: str | None, subresource: str | None) -> None:
        if namespace is not None and not self.namespaced:
            raise ValueError(f"{self.plural} are cluster-scoped; got namespace {namespace!r}")
        if name is not None and namespace is None and self.namespaced:
            raise ValueError(f"{self.plural} are namespaced; a namespace is needed to address {name!r}")
        if subresource is not None and name is None:
            raise ValueError("a subresource needs an object name")


# --- Our CRDs -----------------------------------------------------------------------------------------

IMAGE_PULL_JOBS = Resource(
    constants.GROUP, constants.VERSION, constants.PLURAL_IMAGE_PULL_JOBS, constants.KIND_IMAGE_PULL_JOB, True
)
IMAGE_LIST_PULL_JOBS = Resource(
    constants.GROUP,
    constants.VERSION,
    constants.PLURAL_IMAGE_LIST_PULL_JOBS,
    constants.KIND_IMAGE_LIST_PULL_JOB,
    True,
)
NODE_IMAGES = Resource(
    constants.GROUP, constants.VERSION, constants.PLURAL_NODE_IMAGES, constants.KIND_NODE_IMAGE, False
)

# --- Built-in kinds we use ------------------------------------------------------------------------------

NODES = Resource("", "v1", "nodes", "Node", False)
"""NodeImages mirror Nodes (one per Node, labels copied); nodeimage_sync watches them."""

PODS = Resource("", "v1", "pods", "Pod", True)
"""Jobs can select nodes by the pods running there (`podSelector`)."""

SECRETS = Resource("", "v1", "secrets", "Secret", True)
"""Pull secrets the scheduler resolves for the Credentials service."""

CONFIG_MAPS = Resource("", "v1", "configmaps", "ConfigMap", True)
"""Not used by the services; a harmless built-in kind for tests of this package."""

NAMESPACES = Resource("", "v1", "namespaces", "Namespace", False)

EVENTS = Resource("", "v1", "events", "Event", True)
"""core/v1 Events written by `events.EventRecorder` (kubectl describe shows these)."""

LEASES = Resource("coordination.k8s.io", "v1", "leases", "Lease", True)

TOKEN_REVIEWS = Resource("authentication.k8s.io", "v1", "tokenreviews", "TokenReview", False)

SUBJECT_ACCESS_REVIEWS = Resource("authorization.k8s.io", "v1", "subjectaccessreviews", "SubjectAccessReview", False)
"""Leader election of scheduler and nodeimage_sync."""
