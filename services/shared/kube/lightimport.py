"""Load only the parts of the official `kubernetes` client a service uses, not the whole package.

Why: `import kubernetes` runs the package's `__init__`, which imports every subpackage (client, config, dynamic,
watch, stream, utils, leaderelection); `kubernetes.client`'s `__init__` imports every API class, and
`kubernetes.client.models`' every model class; `kubernetes.config`'s imports `kube_config`, which pulls in
google.auth, oauthlib and yaml. We use a handful of it: `ApiClient`, `Configuration`, `rest`, `ApiException` and
the two config loaders. Our requests ask for raw responses (`_preload_content=False`) and decode the JSON
themselves, so no model class is ever built. Measured (issue "benchmarks", item 7: an idle agent under 80 MB):

- the whole package costs 51 MiB and 1,205 modules (811 of them `kubernetes.*`) on top of what a service loads
  anyway (urllib3, ssl, json); with `install()` the client's core and the in-cluster loader cost 7.5 MiB and
  162 modules, plus 15 MiB and 231 modules when a kubeconfig file is read (`kube_config` and its imports);
- an idle `python -m services.puller` with a kubeconfig: 99 MiB whole, 71 MiB with `install()`; in a cluster
  (in-cluster config, no `kube_config`) some 12 MiB less again.

What `install()` does: it registers `kubernetes`, `kubernetes.client`, `kubernetes.client.api`,
`kubernetes.client.models` and `kubernetes.config` in `sys.modules` as *light* packages: the real packages
(same `__path__`, `__file__` and spec) with their `__init__` not run. Submodules import as usual (`import
kubernetes.client.rest`, `from kubernetes.config import incluster_config`), each loading only what it imports
itself. Then it imports the client's core (`configuration`, `exceptions`, `rest`, `api_client`) and binds the
names the real `kubernetes.client` binds from them (`ApiClient`, `Configuration`, `ApiException`, ...): the
config loaders do `from kubernetes.client import ApiClient, Configuration`.

What is available afterwards: everything the real `__init__`s import, on first use. A light package's module
`__getattr__` (PEP 562) resolves any other name its real `__init__` would have imported
(`kubernetes.client.CustomObjectsApi`, `kubernetes.client.models.V1Pod`, `kubernetes.config.load_kube_config`,
`kubernetes.watch`) by reading that `__init__`'s `from X import Y` statements, and imports only that one module.
Not available: what an `__init__` defines itself instead of importing: `__version__`, and
`kubernetes.config.load_config`, which guesses between a kubeconfig and the in-cluster config (we never guess:
design §2, the `--kubeconfig` flag decides). Looking such a name up raises `AttributeError` saying why.

When it does nothing: when any `kubernetes` module is already imported (a test or benchmark process that
imports the services in-process has the whole package), so that every user of the process sees one and the
same package, whole. Hence entry points call it first, before anything imports `kubernetes`.
"""

from __future__ import annotations

import ast
import importlib
import importlib.machinery
import importlib.util
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType

ROOT = "kubernetes"

LIGHT_PACKAGES = (
    "kubernetes",
    "kubernetes.client",
    "kubernetes.client.api",
    "kubernetes.client.models",
    "kubernetes.config",
)
"""Packages whose `__init__` imports far more than a service uses; parents first."""

CLIENT_CORE: Mapping[str, tuple[str, ...]] = {
    "kubernetes.client.exceptions": (
        "OpenApiException",
        "ApiTypeError",
        "ApiValueError",
        "ApiKeyError",
        "ApiException",
    ),
    "kubernetes.client.configuration": ("Configuration",),
    "kubernetes.client.rest": (),
    "kubernetes.client.api_client": ("ApiClient",),
}
"""The client's core modules, in import order, and the names `kubernetes.client`'s `__init__` binds from each."""


def install() -> bool:
    """Register the light packages and import the client's core; True if done, False if `kubernetes` was loaded.

    Call it before anything imports `kubernetes`; calling it again (or after a whole import) changes nothing.

    Raises:
        ModuleNotFoundError: the `kubernetes` package is not installed.
    """
    if any(name == ROOT or name.startswith(ROOT + ".") for name in sys.modules):
        return False
    try:
        for name in LIGHT_PACKAGES:
            _register_light_package(name)
        _import_client_core()
    except BaseException:
        for name in [n for n in sys.modules if n == ROOT or n.startswith(ROOT + ".")]:
            del sys.modules[name]  # none was there before: leave no half-installed package behind
        raise
    return True


def _register_light_package(name: str) -> None:
    """Put the package `name` into `sys.modules` (and onto its parent) without running its `__init__`."""
    spec = importlib.util.find_spec(name)
    if spec is None or spec.submodule_search_locations is None or spec.origin is None:
        raise ModuleNotFoundError(f"no package {name} to import", name=name)
    package = importlib.util.module_from_spec(spec)
    package.__dict__["__getattr__"] = LazyNames(name, Path(spec.origin))
    sys.modules[name] = package
    parent, _, child = name.rpartition(".")
    if parent:
        setattr(sys.modules[parent], child, package)


def _import_client_core() -> None:
    """Import the client's core and bind its names on the light `kubernetes.client`, as the real `__init__` does."""
    client = sys.modules["kubernetes.client"]
    for module_name, names in CLIENT_CORE.items():
        module = importlib.import_module(module_name)
        for name in names:
            setattr(client, name, getattr(module, name))


class LazyNames:
    """A light package's module `__getattr__`: a name is imported when first looked up, then kept on the package.

    A submodule name imports that submodule (as `from package import submodule` does). Any other name is looked
    up in the statements `from X import Y [as Z]` of the package's real `__init__`, parsed once, on the first
    such lookup (for `kubernetes.client`'s 800 lines about 70 ms and 1.5 MiB, which is why `install()` binds the
    core names itself); `X.Y` is imported and bound as `Z`. Dunder names are never looked up: no `__init__`
    imports one, and tools probe for them (`__all__`, `__wrapped__`). Several threads may look names up at once.
    """

    def __init__(self, package: str, init_file: Path) -> None:
        self._package = package
        self._init_file = init_file
        self._imported_names: dict[str, tuple[str, str]] | None = None
        self._lock = threading.Lock()

    def __call__(self, name: str) -> object:
        """The attribute `name` of the package, imported now; `AttributeError` when the real one has none."""
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(f"module {self._package!r} has no attribute {name!r}", name=name)
        package = sys.modules[self._package]
        if _is_submodule(package, name):
            value: object = importlib.import_module(f"{self._package}.{name}")
        else:
            value = self._import_name(name)
        setattr(package, name, value)
        return value

    def _import_name(self, name: str) -> object:
        source = self._table().get(name)
        if source is None:
            raise AttributeError(
                f"module {self._package!r} has no attribute {name!r}: not imported by its __init__ "
                f"(services.shared.kube.lightimport loads {self._package} without running its __init__; "
                "import the submodule that defines it)",
                name=name,
            )
        module_name, attribute = source
        if module_name == self._package:  # `from . import x`: only a submodule can be meant, never ourselves
            return importlib.import_module(f"{module_name}.{attribute}")
        module = importlib.import_module(module_name)
        try:
            return getattr(module, attribute)
        except AttributeError:
            return importlib.import_module(f"{module_name}.{attribute}")

    def _table(self) -> dict[str, tuple[str, str]]:
        with self._lock:
            if self._imported_names is None:
                self._imported_names = imported_names(self._init_file.read_text(), self._package)
            return self._imported_names


def imported_names(source: str, package: str) -> dict[str, tuple[str, str]]:
    """For the `__init__` of `package` with text `source`: bound name → (module, attribute) of each import.

    Only `from X import Y [as Z]` at the top level counts, relative or absolute; `from __future__` does not.
    """
    names: dict[str, tuple[str, str]] = {}
    for node in ast.parse(source).body:
        if not isinstance(node, ast.ImportFrom) or node.module == "__future__":
            continue
        module = _absolute(node.module or "", node.level, package)
        for alias in node.names:
            names[alias.asname or alias.name] = (module, alias.name)
    return names


def _absolute(module: str, level: int, package: str) -> str:
    """The absolute name of `from <level dots><module> import ...` written in the `__init__` of `package`."""
    if level == 0:
        return module
    base = package.rsplit(".", level - 1)[0] if level > 1 else package
    return f"{base}.{module}" if module else base


def _is_submodule(package: ModuleType, name: str) -> bool:
    """Whether `package` has a submodule `name`, found without importing it."""
    return importlib.machinery.PathFinder.find_spec(f"{package.__name__}.{name}", package.__path__) is not None
