"""Service processes load only what they use of the `kubernetes` client; a process that has it whole keeps it whole.

Each test runs a fresh interpreter (`python -c`): this pytest process imported `kubernetes` whole long ago (the
fixtures need it), and `lightimport.install()` only acts in a process that has not. The child prints what it
found as JSON on its last line. Memory is not asserted here (the benchmarks report it); which modules are
loaded is, since that is what the memory follows.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import kubernetes.client
import pytest

from services.shared.kube import lightimport

REPO = Path(__file__).resolve().parents[4]

CLIENT_CORE_MODULES = {
    "kubernetes",
    "kubernetes.client",
    "kubernetes.client.api",
    "kubernetes.client.models",
    "kubernetes.config",
    "kubernetes.client.api_client",
    "kubernetes.client.configuration",
    "kubernetes.client.exceptions",
    "kubernetes.client.rest",
    "kubernetes.config.config_exception",
    "kubernetes.config.incluster_config",
}
"""Everything of `kubernetes` a service has loaded once its modules are imported: the light packages, the client's
core and the in-cluster loader. (The whole package is about 800 modules.)"""

REPORT_HELPERS = """
import json, sys, types
def kube_modules():
    return sorted(name for name in sys.modules if name == "kubernetes" or name.startswith("kubernetes."))
def classes_of(module):
    return sorted(name for name, value in vars(module).items() if isinstance(value, type))
def report(**found):
    print(json.dumps(found))
"""


def run_python(code: str) -> dict[str, Any]:
    """Run `code` in a fresh interpreter in the repository; the JSON it printed last."""
    completed = subprocess.run(
        [sys.executable, "-c", REPORT_HELPERS + textwrap.dedent(code)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PATH": "/usr/bin:/bin"},  # nothing else: no KUBERNETES_SERVICE_HOST, no KUBECONFIG
    )
    assert completed.returncode == 0, completed.stderr
    found: dict[str, Any] = json.loads(completed.stdout.splitlines()[-1])
    return found


@pytest.fixture
def kubeconfig(tmp_path: Path) -> Path:
    """A kubeconfig for a server nobody listens on: building a client never connects."""
    path = tmp_path / "kubeconfig"
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {"name": "c", "cluster": {"server": "https://127.0.0.1:9", "insecure-skip-tls-verify": True}}
                ],
                "users": [{"name": "u", "user": {"token": "not-a-secret"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    return path


ENTRY_POINTS = sorted(path.parent.name for path in (REPO / "services").glob("*/__main__.py"))
"""Every `python -m services.X` (and the console script of each, which imports `services.X.__main__`)."""


def test_the_entry_points_are_found() -> None:
    assert {"puller", "scheduler", "nodeimage_sync", "cli"} <= set(ENTRY_POINTS)


@pytest.mark.parametrize("entry_point", ENTRY_POINTS)
def test_importing_an_entry_point_loads_only_the_client_core(entry_point: str) -> None:
    found = run_python(
        f"""
        import services.{entry_point}.__main__
        report(modules=kube_modules())
        """
    )

    assert set(found["modules"]) == CLIENT_CORE_MODULES


def test_a_client_built_from_a_kubeconfig_loads_no_model_and_no_api(kubeconfig: Path) -> None:
    found = run_python(
        f"""
        from services.shared.kube import lightimport
        installed = lightimport.install()
        from services.shared.kube import client, kubeapi
        import kubernetes.client.models
        api_client = client.from_kubeconfig({str(kubeconfig)!r})
        kubeapi.KubeApi(api_client)
        report(
            installed=installed,
            host=api_client.configuration.host,
            modules=kube_modules(),
            model_classes=classes_of(kubernetes.client.models),
        )
        """
    )

    assert found["installed"] is True
    assert found["host"] == "https://127.0.0.1:9"
    assert found["model_classes"] == []
    assert not [
        name for name in found["modules"] if name.startswith(("kubernetes.client.api.", "kubernetes.client.models."))
    ]
    assert "kubernetes.config.kube_config" in found["modules"]


def test_the_in_cluster_config_does_not_load_the_kubeconfig_loader() -> None:
    found = run_python(
        """
        from services.shared.kube import lightimport
        lightimport.install()
        import kubernetes.config
        from services.shared.kube import client
        try:
            client.from_kubeconfig("")
            error = ""
        except kubernetes.config.ConfigException as exc:
            error = str(exc)
        report(error=error, modules=kube_modules())
        """
    )

    assert "host/port is not set" in found["error"]  # the in-cluster loader ran, outside a cluster
    assert set(found["modules"]) == CLIENT_CORE_MODULES


def test_names_the_real_init_imports_load_one_module_on_first_use() -> None:
    found = run_python(
        """
        from services.shared.kube import lightimport
        lightimport.install()
        import kubernetes
        before = set(kube_modules())
        custom_objects = kubernetes.client.CustomObjectsApi
        from kubernetes.client import V1ObjectMeta
        metadata = V1ObjectMeta(name="n")
        loaded = sorted(set(kube_modules()) - before)
        report(
            custom_objects=custom_objects.__module__,
            metadata=[type(metadata).__module__, metadata.name],
            pod=kubernetes.client.models.V1Pod.__module__,
            load_kube_config=kubernetes.config.load_kube_config.__module__,
            config_exception=kubernetes.config.ConfigException.__module__,
            watch=kubernetes.watch.Watch.__module__,
            loaded=loaded,
            load_config=hasattr(kubernetes.config, "load_config"),
        )
        """
    )

    assert found["custom_objects"] == "kubernetes.client.api.custom_objects_api"
    assert found["metadata"] == ["kubernetes.client.models.v1_object_meta", "n"]
    assert found["pod"] == "kubernetes.client.models.v1_pod"
    assert found["load_kube_config"] == "kubernetes.config.kube_config"
    assert found["config_exception"] == "kubernetes.config.config_exception"
    assert found["watch"] == "kubernetes.watch.watch"
    assert found["loaded"] == ["kubernetes.client.api.custom_objects_api", "kubernetes.client.models.v1_object_meta"]
    assert found["load_config"] is False  # defined, not imported, by the real __init__: documented as missing


def test_installing_after_a_whole_import_changes_nothing(kubeconfig: Path) -> None:
    found = run_python(
        f"""
        import sys
        import kubernetes
        before = kube_modules()
        from services.shared.kube import lightimport
        installed = lightimport.install()
        after = kube_modules()
        from services.shared.kube import client
        api_client = client.from_kubeconfig({str(kubeconfig)!r})
        custom_objects = kubernetes.client.CustomObjectsApi(api_client)
        report(
            installed=installed,
            unchanged=before == after,
            modules=len(after),
            client_is_whole=kubernetes.client.CustomObjectsApi is sys.modules["kubernetes.client"].CustomObjectsApi,
            custom_objects_host=custom_objects.api_client.configuration.host,
            load_config=callable(kubernetes.config.load_config),
        )
        """
    )

    assert found["installed"] is False
    assert found["unchanged"] is True
    assert found["modules"] > 10 * len(CLIENT_CORE_MODULES)
    assert found["custom_objects_host"] == "https://127.0.0.1:9"
    assert found["load_config"] is True


def test_installing_twice_changes_nothing_the_second_time() -> None:
    found = run_python(
        """
        from services.shared.kube import lightimport
        first = lightimport.install()
        modules = kube_modules()
        second = lightimport.install()
        report(first=first, second=second, unchanged=modules == kube_modules())
        """
    )

    assert found == {"first": True, "second": False, "unchanged": True}


def test_install_in_this_process_is_a_no_op() -> None:
    """The pytest process has `kubernetes` whole (the fixtures import it): installing must not touch it."""
    assert lightimport.install() is False
    assert kubernetes.client.CustomObjectsApi.__module__ == "kubernetes.client.api.custom_objects_api"


@pytest.mark.parametrize(
    ("source", "package", "names"),
    [
        pytest.param(
            "from kubernetes.client.api_client import ApiClient\n",
            "kubernetes.client",
            {"ApiClient": ("kubernetes.client.api_client", "ApiClient")},
            id="absolute",
        ),
        pytest.param(
            "from . import client\nfrom .kube_config import (load_kube_config,\n    list_kube_config_contexts as lc)\n",
            "kubernetes.config",
            {
                "client": ("kubernetes.config", "client"),
                "load_kube_config": ("kubernetes.config.kube_config", "load_kube_config"),
                "lc": ("kubernetes.config.kube_config", "list_kube_config_contexts"),
            },
            id="relative-multiline-as",
        ),
        pytest.param(
            "from ..client import rest\n", "kubernetes.config", {"rest": ("kubernetes.client", "rest")}, id="up"
        ),
        pytest.param(
            "from __future__ import absolute_import\nimport os\n__version__ = '1'\ndef load_config(): pass\n",
            "kubernetes",
            {},
            id="not-imports",
        ),
    ],
)
def test_imported_names_reads_the_from_imports_of_an_init(
    source: str, package: str, names: dict[str, tuple[str, str]]
) -> None:
    assert lightimport.imported_names(source, package) == names
