"""ImagePullJob: pull one image on a set of nodes (upstream-behaviour.md §1.2, §1.3; design §1).

Field names, JSON names and optionality are those of OpenKruise's `apps.kruise.io/v1beta1` types, so an
upstream manifest parses unchanged. Our additions are optional: `status.nodeFailures` (why each failed
node failed), `status.observedGeneration` and `status.conditions`. The job's trace context is an
annotation (`constants.ANNOTATION_TRACE_CONTEXT`).

Unset stays unset: a missing `pullPolicy.timeoutSeconds` reads as `None`, not 600, so writing an object
back never adds values the user did not write. The effective defaults are in `constants`
(`DEFAULT_PULL_TIMEOUT_SECONDS`, …); the CRD schema applies them on the server.

`ImagePullJobTemplate` is everything but the image; `ImageListPullJob` reuses it for its children.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.shared.api import constants, wire
from services.shared.api.conditions import Condition
from services.shared.api.meta import ObjectMeta
from services.shared.api.pulloptions import SandboxConfig
from services.shared.api.selectors import LabelSelector

__all__ = [
    "CompletionPolicy",
    "CompletionPolicyType",
    "ImagePullJob",
    "ImagePullJobSpec",
    "ImagePullJobStatus",
    "ImagePullJobTemplate",
    "NodeFailure",
    "NodeSelector",
    "PullPolicy",
]


class CompletionPolicyType(enum.StrEnum):
    """`completionPolicy.type`: `Always` jobs finish; `Never` jobs keep nodes pulled (re-pull about daily)."""

    ALWAYS = "Always"
    NEVER = "Never"


@dataclass(frozen=True, kw_only=True, slots=True)
class PullPolicy(wire.WireObject):
    """Per-node pull attempt limits; unset fields mean upstream's defaults (600 s, 3 retries)."""

    timeout_seconds: int | None = None
    backoff_limit: int | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class CompletionPolicy(wire.WireObject):
    """When the job ends. Deadline and TTL apply to `Always` jobs only (validation rejects them on `Never`)."""

    type: str = ""
    active_deadline_seconds: int | None = None
    ttl_seconds_after_finished: int | None = None


@dataclass(frozen=True, kw_only=True)
class NodeSelector(LabelSelector):
    """`spec.selector`: explicit node `names` or an inlined label selector (not both); None targets all nodes."""

    names: tuple[str, ...] | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ImagePullJobTemplate(wire.WireObject):
    """Everything an ImagePullJob spec holds besides the image; also the template of ImageListPullJob.

    `parallelism` is IntOrString: an int, or a string that must hold an integer (no percentages).
    `pull_secrets` is immutable on ImagePullJob, and an absent list differs from `[]` there (upstream §1.8),
    so it stays None when absent. `completion_policy` is always written, as Go writes it (the CRD defaults
    it to `{}`, meaning `Always`).
    """

    pull_secrets: tuple[str, ...] | None = None
    selector: NodeSelector | None = None
    pod_selector: LabelSelector | None = None
    parallelism: int | str | None = None
    pull_policy: PullPolicy | None = None
    completion_policy: CompletionPolicy = field(default_factory=CompletionPolicy)
    sandbox_config: SandboxConfig | None = None
    image_pull_policy: str = ""


@dataclass(frozen=True, kw_only=True)
class ImagePullJobSpec(ImagePullJobTemplate):
    """The template inlined, plus the image reference to pull."""

    image: str

    @classmethod
    def from_template(cls, template: ImagePullJobTemplate, *, image: str) -> ImagePullJobSpec:
        """The spec of a job pulling `image` with `template` (how ImageListPullJob builds its children).

        The template's unmodelled keys come along, so template fields newer than this code reach the child.
        """
        return cls(image=image, **_template_values(template))

    def template(self) -> ImagePullJobTemplate:
        """This spec without its image; unmodelled keys are kept."""
        return ImagePullJobTemplate(**_template_values(self))


def _template_values(template: ImagePullJobTemplate) -> dict[str, Any]:
    """The attributes (and `extra`) an `ImagePullJobTemplate` declares, read from any subclass instance."""
    return {f.name: getattr(template, f.name) for f in dataclasses.fields(ImagePullJobTemplate)}


@dataclass(frozen=True, kw_only=True, slots=True)
class NodeFailure(wire.WireObject):
    """Why one node failed the job (our addition, design §5: no empty failure reasons anywhere).

    `reason` is a CamelCase cause such as `PullFailed`, `NodeNotResponding` or `DeadlineExceeded`.
    """

    node: str
    reason: str
    message: str


@dataclass(frozen=True, kw_only=True, slots=True)
class ImagePullJobStatus(wire.WireObject):
    """Counters over the targeted nodes (upstream §1.3), plus our `nodeFailures`, `observedGeneration` and
    `conditions`.

    `active`, `succeeded` and `failed` are always written, as upstream's Go type does (printer columns
    show 0 rather than blank).
    """

    start_time: datetime | None = None
    completion_time: datetime | None = None
    desired: int
    active: int = field(default=0, metadata=wire.ALWAYS_WRITTEN)
    succeeded: int = field(default=0, metadata=wire.ALWAYS_WRITTEN)
    failed: int = field(default=0, metadata=wire.ALWAYS_WRITTEN)
    message: str = ""
    failed_nodes: tuple[str, ...] | None = None
    node_failures: tuple[NodeFailure, ...] | None = None
    observed_generation: int = 0
    conditions: tuple[Condition, ...] | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ImagePullJob(wire.WireObject):
    """A whole ImagePullJob object as the apiserver returns it. `status` is None until first written."""

    api_version: str = constants.API_VERSION
    kind: str = constants.KIND_IMAGE_PULL_JOB
    metadata: ObjectMeta = field(default_factory=ObjectMeta)
    spec: ImagePullJobSpec
    status: ImagePullJobStatus | None = None
