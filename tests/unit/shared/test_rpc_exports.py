"""The shared runtime packages declare their modules in `__all__`, so the public surface is deliberate."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

from services.shared import auth, rpc, telemetry


@pytest.mark.parametrize("package", [rpc, auth, telemetry], ids=lambda p: p.__name__)
def test_all_lists_exactly_the_packages_modules(package):
    modules = sorted(info.name for info in pkgutil.iter_modules(package.__path__) if not info.name.startswith("_"))

    assert sorted(package.__all__) == modules
    for name in modules:
        importlib.import_module(f"{package.__name__}.{name}")
