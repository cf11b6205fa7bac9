"""Choosing the kubeconfig and namespace as kubectl does."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from services.cli import cluster


@pytest.fixture
def home_with_config(tmp_path: Path) -> Path:
    (tmp_path / ".kube").mkdir()
    (tmp_path / ".kube" / "config").write_text("{}")
    return tmp_path


def test_the_flag_wins(home_with_config: Path) -> None:
    assert cluster.kubeconfig_path("/flag", {"KUBECONFIG": "/env"}, home_with_config) == "/flag"


def test_the_first_file_of_the_kubeconfig_variable_comes_next(home_with_config: Path) -> None:
    assert cluster.kubeconfig_path(None, {"KUBECONFIG": ":/a:/b"}, home_with_config) == "/a"


def test_the_home_config_comes_next(home_with_config: Path) -> None:
    assert cluster.kubeconfig_path(None, {}, home_with_config) == str(home_with_config / ".kube" / "config")


def test_without_any_file_the_cluster_config_is_used(tmp_path: Path) -> None:
    assert cluster.kubeconfig_path(None, {"KUBECONFIG": ""}, tmp_path) == ""


def kubeconfig(tmp_path: Path, context: dict[str, str]) -> str:
    path = tmp_path / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
                "users": [{"name": "u", "user": {}}],
                "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u", **context}}],
                "current-context": "ctx",
            }
        )
    )
    return str(path)


def test_the_namespace_of_the_current_context_is_the_default(tmp_path: Path) -> None:
    assert cluster.context_namespace(kubeconfig(tmp_path, {"namespace": "team-a"})) == "team-a"


def test_a_context_without_a_namespace_means_default(tmp_path: Path) -> None:
    assert cluster.context_namespace(kubeconfig(tmp_path, {})) == "default"


def test_an_unreadable_kubeconfig_means_default(tmp_path: Path) -> None:
    assert cluster.context_namespace(str(tmp_path / "absent")) == "default"
