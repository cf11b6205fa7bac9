"""Names of our API: group, version, kinds, resources, and the labels, annotations and finalizers we use.

Every name that another program (kubectl, RBAC rules, a user's manifest, a Go client of OpenKruise's API)
can see is defined once, here, with the reason for its value. Upstream's names live under
`apps.kruise.io`; ours are the same names under `prepull.io` (design §1: a manifest written for OpenKruise
works after changing `apiVersion` only), so each comment names the upstream counterpart.
"""

from __future__ import annotations

from typing import Final

# --- Group and version -------------------------------------------------------------------------------

GROUP: Final = "prepull.io"
"""Our API group; upstream's is `apps.kruise.io`. Ours so both can run side by side in one cluster."""

VERSION: Final = "v1beta1"
"""The one served and stored version (design §1): upstream's hub version, so no conversion webhook."""

API_VERSION: Final = f"{GROUP}/{VERSION}"
"""`apiVersion` of our objects and of the owner references that point at them."""

CATEGORY: Final = "prepull"
"""CRD category of all three kinds, so `kubectl get prepull` lists jobs and NodeImages together."""

# --- Kinds, resources, short names (design §1) --------------------------------------------------------

KIND_IMAGE_PULL_JOB: Final = "ImagePullJob"
KIND_IMAGE_LIST_PULL_JOB: Final = "ImageListPullJob"
KIND_NODE_IMAGE: Final = "NodeImage"

PLURAL_IMAGE_PULL_JOBS: Final = "imagepulljobs"
PLURAL_IMAGE_LIST_PULL_JOBS: Final = "imagelistpulljobs"
PLURAL_NODE_IMAGES: Final = "nodeimages"

SINGULAR_IMAGE_PULL_JOB: Final = "imagepulljob"
SINGULAR_IMAGE_LIST_PULL_JOB: Final = "imagelistpulljob"
SINGULAR_NODE_IMAGE: Final = "nodeimage"

# Upstream has no short names; ours save typing without clashing with built-in resources.
SHORT_NAME_IMAGE_PULL_JOB: Final = "ipj"
SHORT_NAME_IMAGE_LIST_PULL_JOB: Final = "ilpj"
SHORT_NAME_NODE_IMAGE: Final = "ni"

# --- Finalizers -----------------------------------------------------------------------------------

JOB_FINALIZER: Final = f"{GROUP}/deletion-protection"
"""Upstream's `apps.kruise.io/deletion-protection`, renamed. Upstream holds it on an ImagePullJob until the
job's synced secrets are released; we copy no secrets (design §3), so a controller that adds it must remove
it when the job finishes or is deleted, or uninstalling (delete jobs, then CRDs, design §5) would hang."""

# --- Labels -----------------------------------------------------------------------------------------

LABEL_FAKE_NODE_IMAGE: Final = f"{GROUP}/fake-nodeimage"
"""Upstream's `apps.kruise.io/fake-nodeimage`: any value marks a NodeImage with no Node behind it (tests,
simulations) that nodeimage_sync must not delete for lacking a Node."""

LABEL_CONTROLLER_REVISION_HASH: Final = "controller-revision-hash"
"""On each ImagePullJob an ImageListPullJob creates: hash of the list job's template. A child whose hash
differs is re-created (upstream §3). Upstream uses the standard apps/v1 key, not a group-prefixed one, and so
do we: tools that understand the key keep working."""

NODE_LABEL_VIRTUAL_KUBELET: Final = ("type", "virtual-kubelet")
"""A Node label (key, value) that upstream skips: virtual-kubelet nodes get no NodeImage (upstream §4.1)."""

# --- Annotations ----------------------------------------------------------------------------------

ANNOTATION_TRACE_CONTEXT: Final = f"{GROUP}/trace-context"
"""On a job: the W3C `traceparent` of the job's trace, set by the scheduler on first reconcile (design §4),
so `prepull trace <job>` and every later span (on any replica, after restarts) join the same trace."""

SANDBOX_ANNOTATION_PULLED_BY: Final = f"{GROUP}/pulling-image-by"
"""Added to the PodSandboxConfig of every CRI PullImage call; upstream's `apps.kruise.io/pulling-image-by`.
Lets the runtime's logs and audit tell a pre-pull from a kubelet pull."""

SANDBOX_ANNOTATION_PULLED_BY_VALUE: Final = "prepull-puller"
"""Value of `SANDBOX_ANNOTATION_PULLED_BY`; upstream writes `kruise-daemon`."""

# --- Pull secret references -------------------------------------------------------------------------

REFERENCE_MODE_BATCH: Final = "batch"
"""`ReferenceObject.mode` of upstream's shared secret copies (upstream §2.8). We copy no secrets, but a
NodeImage may still hold such refs; nodeimage_sync keeps them (upstream drops only unresolvable legacy refs)."""

# --- Defaults and limits (upstream §1.7, §1.8; enforced by the CRD schema, design §1) -----------------

DEFAULT_PULL_TIMEOUT_SECONDS: Final = 600
"""`pullPolicy.timeoutSeconds` when unset: one pull attempt's timeout."""

DEFAULT_BACKOFF_LIMIT: Final = 3
"""`pullPolicy.backoffLimit` when unset (or negative, as the daemon treats it): retries after the first try."""

DEFAULT_PARALLELISM: Final = 1
"""`parallelism` when unset: upstream does not default the field but treats nil as 1."""

MAX_IMAGES_PER_NODE_IMAGE: Final = 256
"""Upstream's webhook limit on `NodeImage.spec.images` keys."""

NODE_IMAGE_LIST_PAGE_SIZE: Final = 20
"""Objects per page when a controller lists every NodeImage. One can hold hundreds of tag entries (600 KiB as
Python dicts at 200), and what a page's dicts leave behind in the allocator stays resident: after a list of
1,800 NodeImages with 33 tags, 500-object pages left about 120 MiB more than 50-object pages and those 12 MiB
more than 20-object pages (at 200 tags, 50-object pages still left 229 MiB at 1,000 nodes). 3,000 NodeImages
cost 150 small requests."""

MAX_IMAGES_PER_LIST_JOB: Final = 255
"""Upstream's webhook limit on `ImageListPullJob.spec.images`."""

# --- Token audiences for our gRPC services (design §2, "Who may call what") -----------------------------

AUDIENCE_CREDENTIALS: Final = f"{GROUP}/credentials"
"""Audience of the ServiceAccount token the puller presents to `Credentials`; a token minted for anything
else (including the apiserver) is refused, so a leaked token of one kind cannot fetch credentials."""

AUDIENCE_INVENTORY: Final = f"{GROUP}/inventory"
"""Audience of the token the puller presents to `NodeInventory.Report*`."""
