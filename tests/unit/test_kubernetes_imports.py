"""Only services/shared/kube imports the `kubernetes` client library (style: one package wraps the client).

Every module under services/ is parsed with `ast` (nothing is imported), and every `import kubernetes...` or
`from kubernetes... import ...` anywhere in it counts: at the top, inside a function, under `TYPE_CHECKING`.
The command-line tool (services/cli) is a user-side program, not one of the three services, and may use the
client's kubeconfig loading directly.

`NOT_YET_MOVED` lists modules known to break the rule, each with what it uses. It may only shrink: a listed
module that no longer imports `kubernetes` fails the second test until its entry is removed.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SERVICES = REPO / "services"
ALLOWED = (SERVICES / "shared" / "kube", SERVICES / "cli")


def kubernetes_imports(path: Path) -> list[str]:
    """`line: statement` for each import of `kubernetes` (or a submodule) in the module at `path`."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        if any(name == "kubernetes" or name.startswith("kubernetes.") for name in names):
            found.append(f"{node.lineno}: {ast.unparse(node)}")
    return found


def modules_outside_kube() -> list[Path]:
    return sorted(path for path in SERVICES.rglob("*.py") if not any(path.is_relative_to(a) for a in ALLOWED))


def test_the_walk_sees_the_services() -> None:
    walked = {path.relative_to(REPO).as_posix() for path in modules_outside_kube()}

    assert {"services/puller/grpcserver.py", "services/scheduler/app.py", "services/nodeimage_sync/app.py"} <= walked
    assert not any(name.startswith(("services/shared/kube/", "services/cli/")) for name in walked)


def test_no_module_outside_shared_kube_imports_kubernetes() -> None:
    offenders = {
        path.relative_to(REPO).as_posix(): imports
        for path in modules_outside_kube()
        if (imports := kubernetes_imports(path))
    }

    assert offenders == {}


@pytest.mark.parametrize(
    ("source", "found"),
    [
        pytest.param("import kubernetes", True, id="import"),
        pytest.param("import kubernetes.client as k8s", True, id="submodule-as"),
        pytest.param("from kubernetes import client", True, id="from"),
        pytest.param("from kubernetes.client.exceptions import ApiException", True, id="from-submodule"),
        pytest.param("def f():\n    import kubernetes.config", True, id="in-function"),
        pytest.param("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import kubernetes", True, id="typing"),
        pytest.param("import kubernetes_asyncio", False, id="other-package"),
        pytest.param("from .kubernetes import x", False, id="relative"),
        pytest.param("from services.shared.kube import client", False, id="our-wrapper"),
    ],
)
def test_the_detector(tmp_path: Path, source: str, found: bool) -> None:
    module = tmp_path / "module.py"
    module.write_text(source + "\n")

    assert bool(kubernetes_imports(module)) is found
