"""Options that travel with a pull from the job, through the NodeImage tag entry, to the CRI call.

`imagePullPolicy` and `sandboxConfig` appear on jobs (`spec`) and on NodeImages (per tag, per image), so
they live here rather than in either kind's module.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from services.shared.api import wire

__all__ = ["ImagePullPolicy", "SandboxConfig"]


class ImagePullPolicy(enum.StrEnum):
    """Values of `imagePullPolicy`. Fields hold plain strings: upstream does not validate the value.

    The puller skips a pull only for exactly `IfNotPresent`; any other value, unknown ones included,
    always pulls (upstream §2.12).
    """

    ALWAYS = "Always"
    IF_NOT_PRESENT = "IfNotPresent"


@dataclass(frozen=True, kw_only=True, slots=True)
class SandboxConfig(wire.WireObject):
    """Labels and annotations passed as the PodSandboxConfig of the CRI PullImage call.

    Runtimes and credential plugins can use them to tell whose pull it is (kubelet passes the pod's).
    """

    labels: Mapping[str, str] | None = None
    annotations: Mapping[str, str] | None = None
