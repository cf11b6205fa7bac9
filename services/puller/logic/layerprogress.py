"""Byte progress of pulls from containerd's per-layer download statuses, as pure bookkeeping.

containerd lists one ingestion per layer being downloaded (`layer-sha256:<digest>`, bytes so far, expected
total), for all pulls on the node together, and drops an entry once its layer is committed. To turn that into
per-pull progress:

* a layer belongs to the pull that was the only one in flight when the layer first appeared. When several
  pulls are in flight, a new layer cannot be attributed without the image's manifest, so it is reported to
  none of them: progress then understates, it never credits one pull with another's bytes;
* a layer that was seen and then disappears while its pull is still in flight was committed: it counts as
  complete (all of its bytes done).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

__all__ = ["Ingest", "LayerState", "PullBytes", "assign_new_layers", "observe"]


@dataclass(frozen=True)
class Ingest:
    """One download in progress: the layer digest, bytes written and expected size (0 when unknown)."""

    digest: str
    offset: int
    total: int


@dataclass(frozen=True)
class LayerState:
    """What one pull knows about one of its layers."""

    done: int
    total: int
    complete: bool = False


@dataclass(frozen=True)
class PullBytes:
    """One pull's layers, in the order they appeared, and their sums."""

    layers: Mapping[str, LayerState] = field(default_factory=dict)

    @property
    def done(self) -> int:
        """Bytes downloaded over all layers seen."""
        return sum(layer.done for layer in self.layers.values())

    @property
    def total(self) -> int:
        """Expected bytes of the layers seen so far (grows as layers start)."""
        return sum(layer.total for layer in self.layers.values())


def assign_new_layers(ingests: Iterable[Ingest], owners: Mapping[str, str], in_flight: Iterable[str]) -> dict[str, str]:
    """Owners of every layer, after attributing layers not seen before (see the module docstring).

    Args:
        ingests: the downloads listed now.
        owners: layer digest → pull id, from earlier rounds.
        in_flight: ids of the pulls in flight now.
    """
    active = list(in_flight)
    assigned = dict(owners)
    for ingest in ingests:
        if ingest.digest not in assigned and len(active) == 1:
            assigned[ingest.digest] = active[0]
    return assigned


def observe(previous: PullBytes, mine: Iterable[Ingest]) -> PullBytes:
    """The pull's bytes after a listing that shows `mine` (its layers still downloading)."""
    current = {ingest.digest: ingest for ingest in mine}
    layers: dict[str, LayerState] = {}
    for digest, state in previous.layers.items():
        ingest = current.pop(digest, None)
        if ingest is not None:
            layers[digest] = LayerState(done=ingest.offset, total=max(ingest.total, state.total))
        else:
            layers[digest] = LayerState(done=state.total or state.done, total=state.total, complete=True)
    for digest, ingest in current.items():
        layers[digest] = LayerState(done=ingest.offset, total=max(ingest.total, 0))
    return PullBytes(layers=layers)
