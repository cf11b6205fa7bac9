"""Which NodeImage updates are worth a reconcile: any change a decision reads, and nothing else."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from services.nodeimage_sync.logic import triggers
from services.shared.api.nodeimage import NodeImage

BASE: dict[str, Any] = {
    "metadata": {
        "name": "n1",
        "uid": "u1",
        "labels": {"zone": "a"},
        "resourceVersion": "10",
        "generation": 3,
        "annotations": {"note": "x"},
    },
    "spec": {"images": {"nginx": {"tags": [{"tag": "1.25", "version": 0}]}}},
    "status": {"desired": 1, "succeeded": 1, "observedGeneration": 2, "imageStatuses": {"nginx": {"tags": []}}},
}


def matters(new: dict[str, Any]) -> bool:
    return triggers.nodeimage_update_matters(NodeImage.from_dict(BASE), NodeImage.from_dict(new))


def changed(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    new = copy.deepcopy(BASE)
    target = new
    for key in path[:-1]:
        target = target.setdefault(key, {})
    target[path[-1]] = value
    return new


@pytest.mark.parametrize(
    "path, value",
    [
        (("metadata", "resourceVersion"), "11"),
        (("metadata", "annotations"), {"note": "y"}),
        (("status", "observedGeneration"), 3),
    ],
)
def test_what_no_decision_reads_is_no_reason_to_reconcile(path: tuple[str, ...], value: Any) -> None:
    assert not matters(changed(path, value))


@pytest.mark.parametrize(
    "path, value",
    [
        (("metadata", "labels"), {"zone": "b"}),
        (("metadata", "deletionTimestamp"), "2024-05-01T10:00:00Z"),
        (("metadata", "uid"), "u2"),
        (("spec", "images"), {}),
        (("status", "succeeded"), 0),
        (("status", "imageStatuses"), {"nginx": {"tags": [{"tag": "1.25", "phase": "Succeeded"}]}}),
    ],
)
def test_any_change_a_decision_reads_is_reconciled(path: tuple[str, ...], value: Any) -> None:
    assert matters(changed(path, value))
