"""metav1.LabelSelector, as embedded (inlined) in a job's `selector` and `podSelector`.

Only the shape lives here; matching a selector against labels is logic and belongs to the scheduler.
Absent `matchLabels`/`matchExpressions` stay `None` rather than empty, because upstream's validation tells
"set but empty" from "not set" (`selector: {names: [...], matchLabels: {}}` is rejected, upstream §1.8).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from services.shared.api import wire

__all__ = ["LabelSelector", "LabelSelectorRequirement"]


@dataclass(frozen=True, kw_only=True, slots=True)
class LabelSelectorRequirement(wire.WireObject):
    """One `matchExpressions` entry: `key` `operator` (In, NotIn, Exists, DoesNotExist) `values`."""

    key: str
    operator: str
    values: tuple[str, ...] | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class LabelSelector(wire.WireObject):
    """A label query; both parts must match (AND). Inlined into larger selectors by subclassing."""

    match_labels: Mapping[str, str] | None = None
    match_expressions: tuple[LabelSelectorRequirement, ...] | None = None
