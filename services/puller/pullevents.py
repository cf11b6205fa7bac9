"""Kubernetes Events for finished pulls, as upstream emits them (upstream-behaviour.md §6.1), typo fixed.

* Normal `PullImageSucceed` on the NodeImage: `Image <name>:<tag>, elapsedTime <duration>` (upstream writes
  "ecalpsedTime").
* Warning `PullImageFailed` on every owning job of the tag and on the NodeImage: `Image <name>:<tag> <error>`.

Writing goes through the shared `EventRecorder`, which buffers, aggregates repeats and rate-limits, so a
burst of failures never slows a worker. Messages never contain credentials (errors are built without them).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from services.puller.logic.tagstate import PullTask
from services.shared.api import constants
from services.shared.kube import events

__all__ = ["REASON_FAILED", "REASON_SUCCEEDED", "Fanout", "RecorderEvents"]

REASON_SUCCEEDED = "PullImageSucceed"
REASON_FAILED = "PullImageFailed"


class RecorderEvents:
    """`workers.PullEvents` over an `EventRecorder`.

    Args:
        recorder: the shared event recorder (started by the app).
        node_image: returns the NodeImage as last seen (for its uid), or None before the first sync.
        node_name: the NodeImage's name, used when the object is not known.
    """

    def __init__(
        self, recorder: events.EventRecorder, node_image: Callable[[], Mapping[str, Any] | None], node_name: str
    ) -> None:
        self._recorder = recorder
        self._node_image = node_image
        self._node_name = node_name

    def succeeded(self, task: PullTask, elapsed_seconds: float) -> None:
        """Normal `PullImageSucceed` on the NodeImage."""
        self._recorder.normal(self._involved_node_image(), REASON_SUCCEEDED, succeeded_message(task, elapsed_seconds))

    def failed(self, task: PullTask, message: str) -> None:
        """Warning `PullImageFailed` on each owning job and on the NodeImage."""
        text = failed_message(task, message)
        for owner in task.owners:
            involved = {
                "apiVersion": owner.api_version or constants.API_VERSION,
                "kind": owner.kind or constants.KIND_IMAGE_PULL_JOB,
                "metadata": {"namespace": owner.namespace, "name": owner.name, "uid": owner.uid},
            }
            self._recorder.warning(involved, REASON_FAILED, text)
        self._recorder.warning(self._involved_node_image(), REASON_FAILED, text)

    def _involved_node_image(self) -> Mapping[str, Any]:
        known = self._node_image()
        if known is not None:
            return known
        return {
            "apiVersion": constants.API_VERSION,
            "kind": constants.KIND_NODE_IMAGE,
            "metadata": {"name": self._node_name},
        }


class Fanout:
    """`workers.PullEvents` that passes every event to several sinks (Kubernetes Events and metrics)."""

    def __init__(self, *sinks: PullEventSink) -> None:
        self._sinks = sinks

    def succeeded(self, task: PullTask, elapsed_seconds: float) -> None:
        """Tell every sink."""
        for sink in self._sinks:
            sink.succeeded(task, elapsed_seconds)

    def failed(self, task: PullTask, message: str) -> None:
        """Tell every sink."""
        for sink in self._sinks:
            sink.failed(task, message)


class PullEventSink(Protocol):
    """Same shape as `workers.PullEvents` (declared here to keep this module free of a cycle)."""

    def succeeded(self, task: PullTask, elapsed_seconds: float) -> None:
        """A tag was pulled."""
        ...

    def failed(self, task: PullTask, message: str) -> None:
        """A tag failed."""
        ...


def succeeded_message(task: PullTask, elapsed_seconds: float) -> str:
    """`Image <name>:<tag>, elapsedTime <seconds>s`."""
    return f"Image {task.key}, elapsedTime {elapsed_seconds:.3f}s"


def failed_message(task: PullTask, message: str) -> str:
    """`Image <name>:<tag> <error>`."""
    return f"Image {task.key} {message}"
