"""Which traces a coalesced write or report belongs to.

The status writer and the inventory reporter each do one piece of work for many pulls at once (one status write
for several tags, one inventory delta for a burst of pulls). Each pull marks the work dirty from inside its task
span; `PendingTraces` remembers those spans, and the write's span becomes a child of the newest and links to
the others (design §4: the status write is part of each pull's trace).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.util.types import Attributes

__all__ = ["PendingTraces"]

MAX_PENDING = 32
"""Links kept per write; a write for more pulls than this links the newest (traces stay readable)."""


class PendingTraces:
    """The span contexts of the pulls a pending write or report is for (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._contexts: list[trace.SpanContext] = []

    def add_current(self) -> None:
        """Remember the caller's current span, if it is a real (sampled or recording) one."""
        context = trace.get_current_span().get_span_context()
        if not context.is_valid:
            return
        with self._lock:
            if context not in self._contexts:
                self._contexts = [*self._contexts, context][-MAX_PENDING:]

    def take(self) -> tuple[Context, list[trace.Link]] | None:
        """The parent (the newest pull's span) and links (the others) for the write, and forget them all.

        None when no traced pull is pending: such a write (a resync, a periodic snapshot) gets no span, since a
        trace of its own would only bury the pulls' traces.
        """
        with self._lock:
            contexts, self._contexts = self._contexts, []
        if not contexts:
            return None
        parent = trace.set_span_in_context(trace.NonRecordingSpan(contexts[-1]), Context())
        return parent, [trace.Link(context) for context in contexts[:-1]]

    @contextlib.contextmanager
    def span(self, tracer: trace.Tracer, name: str, attributes: Attributes = None) -> Iterator[trace.Span | None]:
        """A span named `name` for the pending pulls (see `take`) around the block; no span (None) without any."""
        pending = self.take()
        if pending is None:
            yield None
            return
        parent, links = pending
        with tracer.start_as_current_span(name, context=parent, links=links, attributes=attributes) as span:
            yield span
