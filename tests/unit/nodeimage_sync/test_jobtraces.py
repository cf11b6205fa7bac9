"""Which jobs' traces a NodeImage write belongs to: the contexts of the tag entries it removes or changes."""

from __future__ import annotations

import dataclasses

from services.nodeimage_sync.logic import jobtraces
from services.shared.api.nodeimage import ImageSpec, ImageTagSpec, NodeImageSpec, TraceContext
from tests.unit.nodeimage_sync.builders import a_job_ref, a_tag

OLD = "00-11111111111111111111111111111111-1111111111111111-01"
NEW = "00-22222222222222222222222222222222-2222222222222222-01"
OTHER = "00-33333333333333333333333333333333-3333333333333333-01"


def traced(tag: str, *traceparents: str) -> ImageTagSpec:
    contexts = tuple(TraceContext(uid=f"uid-{i}", traceparent=value) for i, value in enumerate(traceparents))
    owners = tuple(a_job_ref(f"job-{i}", uid=f"uid-{i}") for i in range(len(traceparents)))
    return dataclasses.replace(a_tag(tag, owners=owners), trace_contexts=contexts)


def spec(**images: tuple[ImageTagSpec, ...]) -> NodeImageSpec:
    return NodeImageSpec(images={name: ImageSpec(tags=tags) for name, tags in images.items()} or None)


def test_a_removed_entry_gives_its_owners_contexts_newest_last() -> None:
    before = spec(nginx=(traced("1.25", OLD, NEW), traced("1.26", OTHER)))
    after = spec(nginx=(traced("1.26", OTHER),))
    assert jobtraces.changed_entry_traces(before, after) == (OLD, NEW)


def test_a_removed_image_and_a_changed_entry_both_count() -> None:
    before = spec(nginx=(traced("1.25", OLD),), redis=(traced("7", NEW),))
    changed = dataclasses.replace(traced("1.25", OLD), owner_references=())
    assert jobtraces.changed_entry_traces(before, spec(nginx=(changed,))) == (OLD, NEW)


def test_unchanged_entries_and_entries_without_contexts_give_nothing() -> None:
    before = spec(nginx=(traced("1.25", OLD), a_tag("1.26")))
    assert jobtraces.changed_entry_traces(before, before) == ()
    assert jobtraces.changed_entry_traces(before, spec(nginx=(traced("1.25", OLD),))) == ()


def test_a_context_on_several_entries_is_listed_once() -> None:
    before = spec(nginx=(traced("1.25", OLD), traced("1.26", OLD)))
    assert jobtraces.changed_entry_traces(before, spec()) == (OLD,)


def test_failed_tags_give_their_entries_contexts() -> None:
    current = spec(nginx=(traced("1.25", OLD), traced("1.26", NEW)))
    assert jobtraces.entry_traces(current, [("nginx", "1.26"), ("redis", "7")]) == (NEW,)
