"""The CLI package's `__all__` lists exactly its modules (except the `__main__` entry point)."""

from __future__ import annotations

import pkgutil

from services import cli


def test_all_lists_every_module() -> None:
    modules = sorted(m.name for m in pkgutil.iter_modules(cli.__path__) if m.name != "__main__")

    assert sorted(cli.__all__) == modules
