"""One watch connection, read as a stream of events; failures come out as our errors.

The apiserver answers `?watch=true` with a chunked HTTP response: one JSON object per line, each
`{"type": ADDED|MODIFIED|DELETED|BOOKMARK|ERROR, "object": {...}}`. We read it ourselves instead of through
the client's `Watch` helper because that helper deserialises into model classes (we want the raw dicts our
API layer parses), tracks resourceVersions on its own, and hides the response, so another thread could not
cut a blocked read short. Here `close()` shuts the socket down for reading, which wakes the reading thread
at once: that is how `informer.Informer.stop()` ends a watch without waiting for its timeout.

An ERROR event is raised as the `errors.KubeError` its Status describes (typically `errors.Gone` for an
expired resourceVersion), so a 410 looks the same whether it came as an HTTP status or inside the stream.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol

from services.shared.kube import errors

ADDED = "ADDED"
MODIFIED = "MODIFIED"
DELETED = "DELETED"
BOOKMARK = "BOOKMARK"
ERROR = "ERROR"


@dataclass(frozen=True)
class WatchEvent:
    """One change: its type (ADDED, MODIFIED, DELETED, BOOKMARK) and the object as the server sent it.

    A BOOKMARK's object carries only `metadata.resourceVersion`: progress without a change.
    """

    type: str
    object: dict[str, Any]

    @property
    def resource_version(self) -> str:
        """The object's `metadata.resourceVersion` ("" when absent)."""
        return str((self.object.get("metadata") or {}).get("resourceVersion") or "")


class StreamingResponse(Protocol):
    """What we need of an unread urllib3 response (`_preload_content=False`)."""

    def stream(self, amt: int | None = ..., decode_content: bool | None = ...) -> Iterator[bytes]:
        """Yield the body as it arrives."""
        ...

    def shutdown(self) -> None:
        """Shut the socket down for reading, from any thread."""
        ...

    def close(self) -> None:
        """Close the connection."""
        ...

    def release_conn(self) -> None:
        """Return the connection to the pool (after the body was read to the end)."""
        ...


class WatchStream:
    """Events from one open watch; iterate it once. Use as a context manager, or call `close()`.

    Iteration ends when the server ends the watch (its `timeoutSeconds` passed) or when `close()` is called.
    It raises `errors.KubeError` for an ERROR event, `errors.TransportError` when the connection breaks.
    """

    def __init__(self, response: StreamingResponse) -> None:
        self._response = response
        self._closed = threading.Event()

    def __iter__(self) -> Iterator[WatchEvent]:
        drained = False
        try:
            for line in self._lines():
                yield _decode(line)
            drained = not self._closed.is_set()
        except errors.KubeError:
            raise
        except Exception as exc:
            if self._closed.is_set():
                return
            raise errors.translate(exc) from exc
        finally:
            self._finish(drained=drained)

    def close(self) -> None:
        """End the watch now, also from another thread: a blocked read returns and iteration stops."""
        if self._closed.is_set():
            return
        self._closed.set()
        with contextlib.suppress(OSError, ValueError):  # no socket any more: the read has already ended
            self._response.shutdown()
        self._response.close()

    def __enter__(self) -> WatchStream:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _lines(self) -> Iterator[bytes]:
        pending = b""
        for chunk in self._response.stream(None, True):
            pending += chunk
            *complete, pending = pending.split(b"\n")
            yield from (line for line in complete if line.strip())
            if self._closed.is_set():
                return
        if pending.strip() and not self._closed.is_set():
            yield pending

    def _finish(self, *, drained: bool) -> None:
        """Give a fully read connection back to the pool; drop one that was left half-read."""
        if drained:
            self._closed.set()
            self._response.release_conn()
        else:
            self.close()


def _decode(line: bytes) -> WatchEvent:
    try:
        decoded = json.loads(line)
        event_type = str(decoded["type"])
        obj = decoded["object"]
    except (ValueError, KeyError, TypeError) as exc:
        raise errors.ServerError(f"undecodable watch event: {line[:200]!r}") from exc
    if not isinstance(obj, dict):
        raise errors.ServerError(f"watch event without an object: {line[:200]!r}")
    if event_type == ERROR:
        raise errors.from_status(obj)
    return WatchEvent(type=event_type, object=obj)
