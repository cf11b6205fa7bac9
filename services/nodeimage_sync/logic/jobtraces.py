"""Which jobs' traces a NodeImage write belongs to (design §4), as pure functions of the entries it changes.

The scheduler records, per owning job, the job's trace context on each tag entry it writes
(`ImageTagSpec.trace_contexts`). When nodeimage_sync changes such an entry (removes an expired tag, drops a
deleted owner, stamps `createdAt`, fails the tag on a timeout), the write is part of those jobs' work, so its
`nodeimage.write` span is put in their traces: a child of the newest owner's context (the last one listed, as
the scheduler appends a joining owner's context) with links to the others, as the puller's task span does.

A change to a status entry whose tag has already left the spec (pruning) has no entry to read contexts from;
such a write stays a trace of its own.
"""

from __future__ import annotations

from collections.abc import Iterable

from services.shared.api.nodeimage import ImageTagSpec, NodeImageSpec

__all__ = ["changed_entry_traces", "entry_traces"]


def changed_entry_traces(before: NodeImageSpec, after: NodeImageSpec) -> tuple[str, ...]:
    """The `traceparent`s carried by every tag entry of `before` that `after` removes or changes, oldest first."""
    after_entries = _entries(after)
    changed = (entry for key, entry in _entries(before).items() if after_entries.get(key) != entry)
    return _traceparents(changed)


def entry_traces(spec: NodeImageSpec, tags: Iterable[tuple[str, str]]) -> tuple[str, ...]:
    """The `traceparent`s carried by the entries of `spec` for the (image, tag) pairs `tags`, oldest first."""
    entries = _entries(spec)
    return _traceparents(entries[key] for key in tags if key in entries)


def _entries(spec: NodeImageSpec) -> dict[tuple[str, str], ImageTagSpec]:
    return {(image, tag.tag): tag for image, value in (spec.images or {}).items() for tag in value.tags}


def _traceparents(entries: Iterable[ImageTagSpec]) -> tuple[str, ...]:
    """Each distinct context once, where it last appears (so a context listed last by any entry comes last)."""
    found: list[str] = []
    for entry in entries:
        for context in entry.trace_contexts or ():
            if context.traceparent in found:
                found.remove(context.traceparent)
            found.append(context.traceparent)
    return tuple(found)
