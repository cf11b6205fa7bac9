"""The job's trace context (design §4): created on first reconcile, kept in an annotation, copied per owner
onto each tag entry the job writes. Full tracing comes later; the context is recorded now so the puller's
spans and `prepull trace <job>` have one trace id per job from the start."""

from __future__ import annotations

import re
import secrets

__all__ = ["is_valid", "new_traceparent"]

_TRACEPARENT = re.compile(r"00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")


def new_traceparent() -> str:
    """A fresh W3C `traceparent` (version 00, sampled)."""
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


def is_valid(traceparent: str | None) -> bool:
    """True for a well-formed version-00 `traceparent`."""
    return bool(traceparent) and _TRACEPARENT.fullmatch(traceparent or "") is not None
