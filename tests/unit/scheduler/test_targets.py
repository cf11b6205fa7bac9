"""Target selection (upstream §2.3) and label selector matching."""

from __future__ import annotations

from typing import Any

import pytest

from services.scheduler.logic import labels, targets
from services.shared.api.selectors import LabelSelector
from tests.unit.scheduler.builders import job, node

NODES = {
    "a": node("a", labels={"zone": "x", "gpu": "yes"}),
    "b": node("b", labels={"zone": "y"}),
    "c": node("c", labels={}),
}


def pod(name: str, node_name: str, *, ns: str = "ns", active: bool = True, **labels: str) -> targets.PodPlacement:
    return targets.PodPlacement(namespace=ns, name=name, node_name=node_name, labels=labels, active=active)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({}, ["a", "b", "c"]),
        ({"selector": {"names": ["c", "a", "missing"]}}, ["a", "c"]),
        ({"selector": {"names": []}}, []),
        ({"selector": {"matchLabels": {"zone": "x"}}}, ["a"]),
        ({"selector": {}}, ["a", "b", "c"]),
        ({"selector": {"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["x"]}]}}, ["b", "c"]),
        ({"selector": {"matchExpressions": [{"key": "gpu", "operator": "Exists"}]}}, ["a"]),
        ({"selector": {"matchExpressions": [{"key": "gpu", "operator": "DoesNotExist"}]}}, ["b", "c"]),
        ({"selector": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["x", "y"]}]}}, ["a", "b"]),
    ],
)
def test_node_selection(spec: dict[str, Any], expected: list[str]) -> None:
    chosen = targets.select_targets(job(**spec).spec, "ns", NODES, [])
    assert [n.metadata.name for n in chosen] == expected


def test_pod_selector_uses_active_pods_of_the_job_namespace_only() -> None:
    pods = [
        pod("p1", "b", app="web"),
        pod("p2", "c", app="web", active=False),
        pod("p3", "a", ns="other", app="web"),
        pod("p4", "a", app="db"),
        pod("p5", "missing-node", app="web"),
    ]
    chosen = targets.select_targets(job(podSelector={"matchLabels": {"app": "web"}}).spec, "ns", NODES, pods)
    assert [n.metadata.name for n in chosen] == ["b"]


def test_empty_pod_selector_matches_every_active_pod() -> None:
    pods = [pod("p1", "b"), pod("p2", "c")]
    chosen = targets.select_targets(job(podSelector={}).spec, "ns", NODES, pods)
    assert [n.metadata.name for n in chosen] == ["b", "c"]


def test_unknown_operator_is_refused() -> None:
    selector = LabelSelector.from_dict({"matchExpressions": [{"key": "k", "operator": "Gt", "values": ["1"]}]})
    with pytest.raises(labels.UnknownOperatorError):
        labels.matches(selector, {"k": "2"})
