"""The package's `__all__` lists exactly its modules, so the public surface cannot drift unnoticed."""

from __future__ import annotations

import importlib
import pkgutil

import services.shared.kube as kube


def test_all_lists_every_module():
    modules = {info.name for info in pkgutil.iter_modules(kube.__path__)}
    assert sorted(kube.__all__) == sorted(modules)


def test_every_module_imports():
    for name in kube.__all__:
        importlib.import_module(f"services.shared.kube.{name}")
