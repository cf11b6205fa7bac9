"""Session-scoped fixtures for the real node side: registries, a fault proxy, containerd nodes and test images.

Everything runs on loopback under one short state directory in /tmp (unix socket paths must stay short) and is
stopped at the end of the session. When a test that uses these fixtures fails, the report gets the last lines
of every component's log.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from localcluster.containerd import ContainerdNode
from localcluster.faultproxy import FaultProxy
from localcluster.images import ImageBuilder, ImageRecipe, PushedImage
from localcluster.registry import Registry

LogSource = tuple[str, Callable[[], str]]
LOG_SOURCES = pytest.StashKey[list[LogSource]]()
NODE_FIXTURES = frozenset(
    {"open_registry", "auth_registry", "fault_proxy", "fault_proxy_session", "containerd_nodes", "pushed_image"}
)


@dataclass(frozen=True)
class ContainerdNodes:
    """The two simulated nodes' runtimes: `a` and `b`, each with its own image store."""

    a: ContainerdNode
    b: ContainerdNode

    def __iter__(self) -> Iterator[ContainerdNode]:
        return iter((self.a, self.b))


def _remember_logs(request: pytest.FixtureRequest, label: str, tail: Callable[[], str]) -> None:
    """Make a component's log tail part of the report of any failing node-side test."""
    request.config.stash.setdefault(LOG_SOURCES, []).append((label, tail))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """On failure of a test that uses node fixtures, attach each component's last log lines."""
    report = yield
    uses_node_side = NODE_FIXTURES & set(getattr(item, "fixturenames", ()))
    if report.failed and uses_node_side:
        for label, tail in item.config.stash.get(LOG_SOURCES, []):
            report.sections.append((f"log tail: {label}", tail()))
    return report


@pytest.fixture(scope="session")
def node_state_dir() -> Iterator[Path]:
    """A short, private directory for all node-side state of this session; removed at the end."""
    path = Path(tempfile.mkdtemp(prefix="pp-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def open_registry(node_state_dir: Path, request: pytest.FixtureRequest) -> Iterator[Registry]:
    """A registry anyone may pull from and push to."""
    registry = Registry("open", node_state_dir / "reg-open")
    _remember_logs(request, "registry open", registry.log_tail)
    try:
        registry.start()
        yield registry
    finally:
        registry.stop()


@pytest.fixture(scope="session")
def auth_registry(node_state_dir: Path, request: pytest.FixtureRequest) -> Iterator[Registry]:
    """A registry that requires `auth_registry.credentials` (htpasswd, bcrypt) for every request."""
    registry = Registry("auth", node_state_dir / "reg-auth", auth=True)
    _remember_logs(request, "registry auth", registry.log_tail)
    try:
        registry.start()
        yield registry
    finally:
        registry.stop()


@pytest.fixture(scope="session")
def fault_proxy_session(open_registry: Registry) -> Iterator[FaultProxy]:
    """The session's fault proxy in front of the open registry (use `fault_proxy` in tests)."""
    proxy = FaultProxy(open_registry.address)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture
def fault_proxy(fault_proxy_session: FaultProxy) -> Iterator[FaultProxy]:
    """The fault proxy in front of the open registry, passing through again after the test."""
    fault_proxy_session.pass_through()
    yield fault_proxy_session
    fault_proxy_session.pass_through()


@pytest.fixture(scope="session")
def containerd_nodes(
    node_state_dir: Path,
    open_registry: Registry,
    auth_registry: Registry,
    fault_proxy_session: FaultProxy,
    request: pytest.FixtureRequest,
) -> Iterator[ContainerdNodes]:
    """Two containerd instances (nodes A and B) that reach both registries and the proxy over plain HTTP,
    with `docker.io` mirrored to the open registry."""
    registries = [open_registry.address, auth_registry.address, fault_proxy_session.address]
    nodes = ContainerdNodes(
        *(
            ContainerdNode(
                f"node-{letter}",
                node_state_dir / f"node-{letter}",
                registries=registries,
                docker_io_mirror=open_registry.address,
            )
            for letter in "ab"
        )
    )
    try:
        for node in nodes:
            _remember_logs(request, f"containerd {node.name}", node.log_tail)
            node.start()
        yield nodes
    finally:
        for node in nodes:
            node.stop()


@pytest.fixture(scope="session")
def image_builder(node_state_dir: Path) -> ImageBuilder:
    """Builds deterministic test images into the session's state directory."""
    return ImageBuilder(node_state_dir / "images")


@pytest.fixture(scope="session")
def pushed_image(image_builder: ImageBuilder, open_registry: Registry) -> PushedImage:
    """A small 3-layer image (3 MiB) in the open registry as `prepull-test/small:v1`."""
    recipe = ImageRecipe("prepull-test/small", total_bytes=3 << 20, layers=3)
    return image_builder.build_and_push(recipe, open_registry, "prepull-test/small", "v1")
