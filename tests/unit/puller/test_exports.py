"""The puller's packages declare their public modules, and the entry point rejects bad flags."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import services.puller
import services.puller.logic
from services.puller import __main__ as entry


@pytest.mark.parametrize("package", [services.puller, services.puller.logic], ids=lambda p: p.__name__)
def test_all_lists_every_module(package: object) -> None:
    names = {info.name for info in pkgutil.iter_modules(package.__path__)} - {"__main__"}  # type: ignore[attr-defined]
    assert sorted(package.__all__) == sorted(names)  # type: ignore[attr-defined]
    for name in names:
        importlib.import_module(f"{package.__name__}.{name}")  # type: ignore[attr-defined]


def test_missing_node_name_exits_with_usage_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NODE_NAME", raising=False)
    assert entry.main([]) == 2
    assert "--node-name" in capsys.readouterr().err
