"""How many more nodes a job may start now, and which (upstream-behaviour.md §2.5, §10.3; design §5).

`parallelism` bounds the job's *active* nodes (Waiting, Pulling, not yet reported, stale version). Free slots
are `parallelism - active`; nil means 1, 0 pauses the job; a string must hold an integer (a bad one reads as
0, as upstream's `IntValue`). Not-synced nodes are taken in name order, so a rollout is predictable.

On top of that, cluster-wide and per-registry caps on pulls in flight (our addition, design §5) shrink the
slots further; 0 means no cap.
"""

from __future__ import annotations

from collections.abc import Sequence

from services.shared.api import constants

__all__ = ["choose_nodes", "parallelism_limit", "slots"]


def parallelism_limit(parallelism: int | str | None) -> int:
    """The integer value of `spec.parallelism`: nil → 1, an integer string → its value, anything else → 0."""
    if parallelism is None:
        return constants.DEFAULT_PARALLELISM
    if isinstance(parallelism, int):
        return parallelism
    try:
        return int(parallelism.strip())
    except ValueError:
        return 0


def slots(
    parallelism: int | str | None,
    active: int,
    *,
    cluster_in_flight: int = 0,
    cluster_cap: int = 0,
    registry_in_flight: int = 0,
    registry_cap: int = 0,
) -> int:
    """How many not-synced nodes the job may start now (never negative)."""
    free = parallelism_limit(parallelism) - active
    if cluster_cap > 0:
        free = min(free, cluster_cap - cluster_in_flight)
    if registry_cap > 0:
        free = min(free, registry_cap - registry_in_flight)
    return max(free, 0)


def choose_nodes(not_synced: Sequence[str], free_slots: int) -> list[str]:
    """The first `free_slots` not-synced node names in name order."""
    if free_slots <= 0:
        return []
    return sorted(not_synced)[:free_slots]
