"""metav1.Condition for `status.conditions` (our addition to upstream's status, design §1).

Upstream jobs only carry counters and a message; tools such as `kubectl wait --for=condition=Complete`
and GitOps health checks need standard conditions. The condition types say where a job is:

* `Progressing`: the job is working towards its targets (True while pulls are outstanding).
* `Complete`: an `Always` job finished (every target Succeeded or Failed, or the deadline passed).
* `Failed`: at least one target failed; the message says which and why.

`set_condition` follows `meta.SetStatusCondition` from apimachinery: `lastTransitionTime` changes only when
the status does, so a re-written condition does not look like a new transition.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from services.shared.api import wire

__all__ = ["Condition", "ConditionStatus", "ConditionType", "find_condition", "set_condition"]


class ConditionType(enum.StrEnum):
    """The condition types our controllers write on jobs."""

    COMPLETE = "Complete"
    FAILED = "Failed"
    PROGRESSING = "Progressing"


class ConditionStatus(enum.StrEnum):
    """metav1.ConditionStatus values."""

    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


@dataclass(frozen=True, kw_only=True, slots=True)
class Condition(wire.WireObject):
    """metav1.Condition. `type`, `status`, `lastTransitionTime`, `reason` and `message` are required by its schema.

    `type` and `status` are plain strings so that conditions written by other tools survive a round trip;
    compare them with `ConditionType`/`ConditionStatus` members (they are `str` subclasses).
    """

    type: str
    status: str
    last_transition_time: datetime
    reason: str
    message: str
    observed_generation: int = 0


def find_condition(conditions: Iterable[Condition] | None, condition_type: str) -> Condition | None:
    """The condition of the given type, or None when the list lacks it (or is absent)."""
    return next((c for c in conditions or () if c.type == condition_type), None)


def set_condition(conditions: Iterable[Condition] | None, new: Condition) -> tuple[Condition, ...]:
    """The conditions with `new` added or replacing the one of its type, order otherwise kept.

    When the status is unchanged, the existing `lastTransitionTime` is kept, whatever `new` carries.
    """
    current = tuple(conditions or ())
    existing = find_condition(current, new.type)
    if existing is None:
        return (*current, new)
    if existing.status == new.status:
        new = dataclasses.replace(new, last_transition_time=existing.last_transition_time)
    return tuple(new if c.type == new.type else c for c in current)
