"""Fixtures for running the real puller in-process against the session's apiserver and containerd nodes.

Each test gets its own NodeImage (a unique name, marked fake so nothing deletes it for lacking a Node),
writes tag entries into its spec the way the scheduler would, and watches the status the puller writes.
Timers are shortened through the puller's own settings, never by patching code.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from opentelemetry.trace import TracerProvider

from localcluster.containerd import ContainerdNode
from localcluster.controlplane import ControlPlane
from localcluster.images import ImageBuilder, ImageRecipe, PushedImage
from localcluster.registry import Registry
from services.puller import app, cri, progress
from services.puller.credentials_client import CredentialsSource
from services.puller.settings import PullerSettings
from services.shared.api import constants
from services.shared.api.pulloptions import SandboxConfig
from services.shared.kube import client, errors, kubeapi, resources

WAIT_SECONDS = 120.0


class CountingImageService:
    """A pass-through `cri.ImageService` that counts PullImage calls and the most pulls seen in flight."""

    def __init__(self, inner: cri.ImageService) -> None:
        self.inner = inner
        self._lock = threading.Lock()
        self.pull_calls: list[str] = []
        self.in_flight = 0
        self.max_in_flight = 0

    def pull_image(self, reference: str, **kwargs: Any) -> str:
        with self._lock:
            self.pull_calls.append(reference)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return self.inner.pull_image(reference, **kwargs)
        finally:
            with self._lock:
                self.in_flight -= 1

    def image_status(self, reference: str) -> cri.RuntimeImage | None:
        return self.inner.image_status(reference)

    def list_images(self) -> list[cri.RuntimeImage]:
        return self.inner.list_images()

    def image_fs_info(self) -> list[cri.FilesystemUsage]:
        return self.inner.image_fs_info()

    def version(self) -> cri.RuntimeVersion:
        return self.inner.version()

    def pulls_of(self, reference: str) -> int:
        with self._lock:
            return self.pull_calls.count(reference)


def puller_settings(node_name: str, socket: str, **overrides: Any) -> PullerSettings:
    """Settings for a test puller: short retry sleeps and a fast status rate; no gRPC or HTTP listeners."""
    base = PullerSettings.from_args(
        [
            f"--node-name={node_name}",
            f"--cri-socket={socket}",
            "--backoff-initial=200ms",
            "--backoff-max=1s",
            "--status-write-qps=20",
            "--status-write-burst=20",
            "--status-write-coalesce=50ms",
            "--resync-pulling=1s",
            "--resync-jitter-pulling=0",
            "--min-free-disk=0",
            "--grpc-address=127.0.0.1:0",
            "--metrics-address=0",
            "--health-address=0",
        ],
        {},
    )
    return replace(base, **overrides)


@dataclass
class PullerHandle:
    """A running test puller and what the test may inspect."""

    app: app.PullerApp
    images: CountingImageService
    node: ContainerdNode


@dataclass
class NodeImages:
    """Creates and edits NodeImages of this test, as the scheduler would; reads their status."""

    api: kubeapi.KubeApi
    created: list[str] = field(default_factory=list)

    def create(self) -> str:
        name = f"puller-{uuid.uuid4().hex[:8]}"
        self.api.create(
            resources.NODE_IMAGES,
            {
                "apiVersion": constants.API_VERSION,
                "kind": constants.KIND_NODE_IMAGE,
                "metadata": {"name": name, "labels": {constants.LABEL_FAKE_NODE_IMAGE: "true"}},
                "spec": {},
            },
        )
        self.created.append(name)
        return name

    def get(self, name: str) -> dict[str, Any]:
        return self.api.get(resources.NODE_IMAGES, name)

    def set_images(self, name: str, images: dict[str, list[dict[str, Any]]]) -> None:
        """Write several images' tag entries in one patch, so their workers all start together."""
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        spec = {
            image: {"tags": [{"createdAt": now, "pullPolicy": {"ttlSecondsAfterFinished": 600}, **tag} for tag in tags]}
            for image, tags in images.items()
        }
        self.api.patch(resources.NODE_IMAGES, name, {"spec": {"images": spec}})

    def set_image(
        self,
        name: str,
        image: str,
        tags: list[dict[str, Any]],
        *,
        pull_secrets: list[dict[str, str]] | None = None,
        sandbox: SandboxConfig | None = None,
    ) -> None:
        """Write `spec.images[image]` with `tags` (each gets a pull policy and createdAt unless given)."""
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        entries = [
            {"createdAt": now, "pullPolicy": {"ttlSecondsAfterFinished": 600}, **tag}
            for tag in sorted(tags, key=lambda t: t["tag"])
        ]
        body: dict[str, Any] = {"tags": entries}
        if pull_secrets:
            body["pullSecrets"] = pull_secrets
        if sandbox is not None:
            body["sandboxConfig"] = sandbox.to_dict()
        self.api.patch(resources.NODE_IMAGES, name, {"spec": {"images": {image: body}}})

    def events(self, name: str, namespace: str = "default") -> list[dict[str, Any]]:
        """Events about the NodeImage `name` (cluster-scoped objects' events live in `default`)."""
        listed = self.api.list(resources.EVENTS, namespace=namespace, field_selector=f"involvedObject.name={name}")
        return listed.items

    def wait_for_event(self, name: str, reason: str, namespace: str = "default") -> dict[str, Any]:
        """Poll until an Event with `reason` about `name` exists; returns it."""
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline:
            for event in self.events(name, namespace):
                if event["reason"] == reason:
                    return event
            time.sleep(0.2)
        raise AssertionError(f"no {reason} event about {name}")

    def remove_image(self, name: str, image: str) -> None:
        self.api.patch(resources.NODE_IMAGES, name, {"spec": {"images": {image: None}}})

    def tag_status(self, name: str, image: str, tag: str) -> dict[str, Any] | None:
        status = self.get(name).get("status") or {}
        for entry in ((status.get("imageStatuses") or {}).get(image) or {}).get("tags") or []:
            if entry["tag"] == tag:
                return dict(entry)
        return None

    def wait_for(
        self,
        name: str,
        image: str,
        tag: str,
        phases: tuple[str, ...],
        *,
        version: int = 0,
        timeout: float = WAIT_SECONDS,
    ) -> dict[str, Any]:
        """Poll until the tag's status has one of `phases` at `version`; returns that status entry."""
        deadline = time.monotonic() + timeout
        last: dict[str, Any] | None = None
        while time.monotonic() < deadline:
            last = self.tag_status(name, image, tag)
            if last is not None and last["phase"] in phases and last.get("version", 0) == version:
                return last
            time.sleep(0.2)
        raise AssertionError(f"{image}:{tag} on {name} never reached {phases} at version {version}; last: {last}")


@pytest.fixture
def node_images(control_plane: ControlPlane, prepull_crds: tuple[str, ...]) -> Iterator[NodeImages]:
    """NodeImages for this test, deleted afterwards."""
    api = kubeapi.KubeApi(client.from_kubeconfig(control_plane.kubeconfig))
    images = NodeImages(api)
    yield images
    for name in images.created:
        with contextlib.suppress(errors.KubeError):  # cleanup must not hide the test's own failure
            api.delete(resources.NODE_IMAGES, name)


PullerFactory = Callable[..., PullerHandle]


@pytest.fixture
def start_puller(control_plane: ControlPlane) -> Iterator[PullerFactory]:
    """Start in-process pullers: `start_puller(node_name, containerd_node, credentials=..., **settings)`."""
    running: list[PullerHandle] = []

    def start(
        node_name: str,
        node: ContainerdNode,
        *,
        credentials: CredentialsSource | None = None,
        byte_progress: bool = False,
        tracer_provider: TracerProvider | None = None,
        **overrides: Any,
    ) -> PullerHandle:
        settings = puller_settings(node_name, node.cri_target, **overrides)
        api = kubeapi.KubeApi(client.from_kubeconfig(control_plane.kubeconfig))
        runtime = cri.CriImageService(settings.cri_socket, tracer_provider=tracer_provider)
        images = CountingImageService(runtime)
        tracker = progress.for_runtime(runtime, interval=0.1) if byte_progress else None
        puller = app.PullerApp(
            settings,
            api=api,
            images=images,
            credentials=credentials,
            progress=tracker,
            tracer_provider=tracer_provider,
        )
        puller.start()
        handle = PullerHandle(puller, images, node)
        running.append(handle)
        return handle

    yield start
    for handle in running:
        handle.app.stop()


def wait_until(condition: Callable[[], bool], what: str, timeout: float = WAIT_SECONDS) -> None:
    """Poll `condition` until it holds; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def unique_image(image_builder: ImageBuilder, open_registry: Registry) -> Callable[..., PushedImage]:
    """Push a fresh image (content unique to the call) to the open registry: `unique_image(total_bytes=...)`."""

    def push(*, total_bytes: int = 256 << 10, layers: int = 2, tag: str = "v1") -> PushedImage:
        name = f"prepull-test/u{uuid.uuid4().hex[:10]}"
        recipe = ImageRecipe(name, total_bytes=total_bytes, layers=layers)
        return image_builder.build_and_push(recipe, open_registry, name, tag)

    return push
