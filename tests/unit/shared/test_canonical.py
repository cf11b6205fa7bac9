"""A canonical table shares one object per key and forgets the ones nobody holds."""

from __future__ import annotations

import functools
import gc

from services.shared.canonical import Canonical


class Value:
    def __init__(self, name: str) -> None:
        self.name = name


def test_equal_keys_get_the_object_made_first() -> None:
    table: Canonical[tuple[str, int], Value] = Canonical()
    made: list[str] = []

    def make(name: str) -> Value:
        made.append(name)
        return Value(name)

    first = table.get(("a", 1), lambda: make("a"))
    assert table.get(("a", 1), lambda: make("again")) is first
    assert table.get(("b", 1), lambda: make("b")) is not first
    assert made == ["a", "b"]


def test_a_sweep_keeps_the_values_someone_holds_and_drops_the_rest() -> None:
    table: Canonical[str, Value] = Canonical(first_sweep=8)
    held = [table.get(name, functools.partial(Value, name)) for name in ("a", "b", "c")]
    for i in range(20):
        table.get(f"dropped-{i}", functools.partial(Value, f"dropped-{i}"))
    gc.collect()
    assert len(table) < 8
    assert [table.get(name, functools.partial(Value, "new")) for name in ("a", "b", "c")] == held
