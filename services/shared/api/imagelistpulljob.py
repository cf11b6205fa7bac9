"""ImageListPullJob: pull many images, one child ImagePullJob per image (upstream-behaviour.md §1.4, §3).

The spec is the ImagePullJob template plus `images`; status counts children, not nodes. Like
ImagePullJob, our additions are the optional `status.observedGeneration` and `status.conditions`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from services.shared.api import constants, wire
from services.shared.api.conditions import Condition
from services.shared.api.imagepulljob import ImagePullJobSpec, ImagePullJobTemplate
from services.shared.api.meta import ObjectMeta

__all__ = ["FailedImageStatus", "ImageListPullJob", "ImageListPullJobSpec", "ImageListPullJobStatus"]


@dataclass(frozen=True, kw_only=True)
class ImageListPullJobSpec(ImagePullJobTemplate):
    """The shared template plus the image list (required; unique; at most 255 entries)."""

    images: tuple[str, ...]

    def child_spec(self, image: str) -> ImagePullJobSpec:
        """The spec of the child ImagePullJob that pulls `image` with this template."""
        return ImagePullJobSpec.from_template(self, image=image)


@dataclass(frozen=True, kw_only=True, slots=True)
class FailedImageStatus(wire.WireObject):
    """One child job with failed nodes: which child, which image, and where to look."""

    image_pull_job: str = ""
    name: str = ""
    message: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class ImageListPullJobStatus(wire.WireObject):
    """Counters over the child jobs (upstream §1.4), plus our `observedGeneration` and `conditions`."""

    start_time: datetime | None = None
    completion_time: datetime | None = None
    desired: int
    active: int = field(default=0, metadata=wire.ALWAYS_WRITTEN)
    completed: int = field(default=0, metadata=wire.ALWAYS_WRITTEN)
    succeeded: int = field(default=0, metadata=wire.ALWAYS_WRITTEN)
    failed_image_statuses: tuple[FailedImageStatus, ...] | None = None
    observed_generation: int = 0
    conditions: tuple[Condition, ...] | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ImageListPullJob(wire.WireObject):
    """A whole ImageListPullJob object as the apiserver returns it. `status` is None until first written."""

    api_version: str = constants.API_VERSION
    kind: str = constants.KIND_IMAGE_LIST_PULL_JOB
    metadata: ObjectMeta = field(default_factory=ObjectMeta)
    spec: ImageListPullJobSpec
    status: ImageListPullJobStatus | None = None
