"""Which (image, tag) pairs a NodeImage update touched."""

from __future__ import annotations

from services.scheduler.logic import wakeups
from services.shared.api.selectors import LabelSelector
from tests.unit.scheduler.builders import node, tag_entry, tag_status


def test_status_change_of_one_tag_touches_only_that_pair_with_its_owners() -> None:
    tags = [tag_entry("1", owners=("j1",)), tag_entry("2", owners=("j2",))]
    old = node("a", tags=tags, statuses=[tag_status("1", "Pulling"), tag_status("2", "Pulling")])
    new = node("a", tags=tags, statuses=[tag_status("1", "Succeeded"), tag_status("2", "Pulling")])
    changes = wakeups.changed_pairs(old, new)
    assert set(changes) == {("nginx", "1")}
    assert changes[("nginx", "1")] == wakeups.PairChange(spec_changed=False, owners=frozenset({"j1"}))


def test_label_only_change_touches_no_pair() -> None:
    tags = [tag_entry("1")]
    assert wakeups.changed_pairs(node("a", tags=tags, labels={"x": "1"}), node("a", tags=tags, labels={"x": "2"})) == {}


def test_secret_change_touches_every_tag_of_the_image() -> None:
    tags = [tag_entry("1"), tag_entry("2")]
    old = node("a", tags=tags, pull_secrets=[])
    new = node("a", tags=tags, pull_secrets=[{"namespace": "ns", "name": "s"}])
    changes = wakeups.changed_pairs(old, new)
    assert set(changes) == {("nginx", "1"), ("nginx", "2")}
    assert all(c.spec_changed for c in changes.values())


def test_removed_tag_is_a_spec_change() -> None:
    old = node("a", tags=[tag_entry("1", owners=("j1",))])
    new = node("a", tags=[])
    assert wakeups.changed_pairs(old, new)[("nginx", "1")] == wakeups.PairChange(
        spec_changed=True, owners=frozenset({"j1"})
    )


def test_status_only_change_wakes_owners_only() -> None:
    changes = {("nginx", "1"): wakeups.PairChange(spec_changed=False, owners=frozenset({"u1"}))}
    by_pair = {("nginx", "1"): [("ns/j1", "u1"), ("ns/j2", "u2")], ("nginx", "2"): [("ns/j3", "u3")]}
    assert wakeups.jobs_for_pair_changes(changes, by_pair, lambda key: True) == {"ns/j1"}


def test_spec_change_wakes_owners_and_jobs_targeting_the_node() -> None:
    changes = {("nginx", "1"): wakeups.PairChange(spec_changed=True, owners=frozenset())}
    by_pair = {("nginx", "1"): [("ns/j1", "u1"), ("ns/j2", "u2")]}
    assert wakeups.jobs_for_pair_changes(changes, by_pair, lambda key: key == "ns/j2") == {"ns/j2"}


def test_label_change_wakes_jobs_whose_match_flipped() -> None:
    selectors = [
        ("ns/zone-x", LabelSelector(match_labels={"zone": "x"})),
        ("ns/gpu", LabelSelector(match_labels={"gpu": "yes"})),
        ("ns/all", LabelSelector()),
    ]
    flipped = wakeups.label_match_flips(selectors, {"zone": "x", "gpu": "yes"}, {"zone": "y", "gpu": "yes"})
    assert flipped == {"ns/zone-x"}
    assert wakeups.label_match_flips(selectors, {"zone": "x"}, {"zone": "x"}) == set()
