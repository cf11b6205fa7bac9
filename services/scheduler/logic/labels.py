"""Matching a metav1.LabelSelector against a label map, with the apimachinery semantics.

`matchLabels` and `matchExpressions` are ANDed; an empty selector matches everything. `NotIn` and
`DoesNotExist` match objects that lack the key, as in Kubernetes.
"""

from __future__ import annotations

from collections.abc import Mapping

from services.shared.api.selectors import LabelSelector, LabelSelectorRequirement

__all__ = ["UnknownOperatorError", "is_empty", "matches"]


class UnknownOperatorError(ValueError):
    """A `matchExpressions` operator Kubernetes does not define (the CRD schema should have refused it)."""


def is_empty(selector: LabelSelector) -> bool:
    """True when the selector has neither labels nor expressions (it selects everything)."""
    return not selector.match_labels and not selector.match_expressions


def matches(selector: LabelSelector, labels: Mapping[str, str] | None) -> bool:
    """Whether `labels` satisfy every part of `selector`.

    Raises:
        UnknownOperatorError: an expression uses an operator other than In, NotIn, Exists, DoesNotExist.
    """
    present = labels or {}
    for key, value in (selector.match_labels or {}).items():
        if present.get(key) != value:
            return False
    return all(_requirement_holds(requirement, present) for requirement in selector.match_expressions or ())


def _requirement_holds(requirement: LabelSelectorRequirement, labels: Mapping[str, str]) -> bool:
    values = requirement.values or ()
    operator = requirement.operator
    if operator == "In":
        return requirement.key in labels and labels[requirement.key] in values
    if operator == "NotIn":
        return requirement.key not in labels or labels[requirement.key] not in values
    if operator == "Exists":
        return requirement.key in labels
    if operator == "DoesNotExist":
        return requirement.key not in labels
    raise UnknownOperatorError(f"unknown label selector operator {operator!r}")
