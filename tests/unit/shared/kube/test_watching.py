"""A watch response is read line by line however it is chunked; ERROR events raise; close() unblocks a read."""

from __future__ import annotations

import json
import queue
import threading
from typing import Any

import pytest
import urllib3.exceptions

from services.shared.kube import errors, watching

pytestmark = pytest.mark.timeout(10)


class ScriptedResponse:
    """Stands in for an unread urllib3 response: yields the chunks a test feeds it."""

    def __init__(self, chunks=(), *, fail_with: Exception | None = None) -> None:
        self.chunks: queue.Queue[bytes | None] = queue.Queue()
        for chunk in chunks:
            self.chunks.put(chunk)
        if chunks:
            self.chunks.put(None)
        self.fail_with = fail_with
        self.released = False
        self.closed = False

    def stream(self, amt=None, decode_content=None):
        while (chunk := self.chunks.get()) is not None:
            yield chunk
        if self.fail_with is not None and not self.closed:
            raise self.fail_with

    def shutdown(self) -> None:
        self.chunks.put(None)

    def close(self) -> None:
        self.closed = True

    def release_conn(self) -> None:
        self.released = True


def line(event_type: str, obj: dict[str, Any]) -> bytes:
    return json.dumps({"type": event_type, "object": obj}).encode() + b"\n"


def config_map(name: str, rv: str) -> dict[str, Any]:
    return {"kind": "ConfigMap", "metadata": {"name": name, "resourceVersion": rv}}


def test_events_split_across_chunks_are_reassembled():
    data = line("ADDED", config_map("a", "1")) + line("BOOKMARK", {"metadata": {"resourceVersion": "5"}})
    response = ScriptedResponse([data[:7], data[7:40], data[40:]])
    events = list(watching.WatchStream(response))
    assert [(e.type, e.resource_version) for e in events] == [("ADDED", "1"), ("BOOKMARK", "5")]
    assert events[0].object["metadata"]["name"] == "a"
    assert response.released  # a fully read connection goes back to the pool


def test_an_error_event_raises_the_error_it_describes():
    status = {"kind": "Status", "code": 410, "reason": "Expired", "message": "too old resource version: 1 (9)"}
    response = ScriptedResponse([line("ADDED", config_map("a", "1")) + line("ERROR", status)])
    stream = watching.WatchStream(response)
    seen = []
    with pytest.raises(errors.Gone, match="too old"):
        for event in stream:
            seen.append(event.type)
    assert seen == ["ADDED"]
    assert response.closed and not response.released  # a half-read connection is never reused


def test_a_broken_connection_is_a_transport_error():
    response = ScriptedResponse(
        [line("ADDED", config_map("a", "1"))], fail_with=urllib3.exceptions.ProtocolError("reset")
    )
    with pytest.raises(errors.TransportError):
        list(watching.WatchStream(response))


def test_garbage_is_a_server_error():
    with pytest.raises(errors.ServerError, match="undecodable"):
        list(watching.WatchStream(ScriptedResponse([b"not json\n"])))


def test_close_from_another_thread_ends_a_blocked_iteration():
    response = ScriptedResponse(fail_with=urllib3.exceptions.ProtocolError("socket shut down"))
    response.chunks.put(line("ADDED", config_map("a", "1")))
    stream = watching.WatchStream(response)
    seen: list[str] = []
    reader = threading.Thread(target=lambda: seen.extend(e.type for e in stream))
    reader.start()
    reader.join(0.2)
    assert reader.is_alive()
    stream.close()
    reader.join(2)
    assert not reader.is_alive()
    assert seen == ["ADDED"]
