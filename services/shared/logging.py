"""Structured JSON logs: one line per record, bound to the Kubernetes object and the current trace.

Every service calls `configure(level)` once at start-up. Each record becomes one JSON object on one line:

    {"time": "2024-01-01T00:00:00.000Z", "level": "info", "logger": "services.scheduler.reconciler",
     "message": "reconciled", "object": "ImagePullJob/default/warm-nginx",
     "trace_id": "4bf9...", "span_id": "00f0...", "elapsed": 0.012}

- `object` comes from a bound logger (`bind(log, kind=..., namespace=..., name=...)`), so call sites do not
  repeat the reference (style principle 10, after kopf's object-bound loggers and klog's `KObj`).
- `trace_id`/`span_id` come from the OpenTelemetry span current when the record is made, which links a log
  line to its trace. Only the API is used; with tracing off there is no valid span and the fields are absent.
- Any `extra={...}` key becomes a field of its own (values that are not JSON become strings).

Redaction is defence in depth. Code must never log a credential; `RedactingFilter` still rewrites whatever
looks like one (a bearer token, a JWT, a value under a key such as `password`, `auth` or `token` written as
`key=value`, `"key": value` or `key:value`) before any handler formats the record, in the message, in the
exception text and in extra fields. It cannot recognise every secret (an unquoted `key: value` reads like
prose and is left alone), which is why the rule above stays the rule. `configure` also caps the `urllib3` and
`kubernetes.client.rest` loggers at WARNING: at DEBUG they print whole response bodies, and a TokenReview
response echoes the token it reviewed.
"""

from __future__ import annotations

import datetime
import json
import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any, TextIO

from opentelemetry import trace

REDACTED = "[REDACTED]"
NOISY_LOGGERS = ("urllib3", "kubernetes.client.rest")
"""Loggers that dump request/response bodies (tokens included) at DEBUG; never below WARNING."""

_SECRET_WORDS = r"(?:password|passwd|secret|token|auth|authorization|credentials?)"
# 8+ characters: real tokens are far longer, and prose such as "bearer token" must survive.
_BEARER = re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9\-._~+/]{8,}=*")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
# A value under a secret-sounding key: `password=x`, `"auth": "x"`, `'token': 'x'`, `secret:x`. An unquoted key
# followed by ": " is left alone, because that is how prose reads ("invalid credentials: check the secret");
# header-style `Authorization: Bearer ...` is caught by _BEARER and bare JWTs by _JWT instead.
_KEY_VALUE = re.compile(
    rf"""(?ix)
    (?P<key>
        (?:"[\w.-]*{_SECRET_WORDS}"|'[\w.-]*{_SECRET_WORDS}')\s*[:=]\s*   # "auth": / 'password'=
      | \b[\w.-]*{_SECRET_WORDS}\s*=\s*                                  # password=  token = x
      | \b[\w.-]*{_SECRET_WORDS}:(?=\S)                                   # secret:x
    )
    (?:(?:bearer|basic)\s+)?(?:"[^"]*"|'[^']*'|[^\s"',;}}\]]+)           # the value, quoted or bare
    """
)
_SECRET_KEY = re.compile(rf"(?i){_SECRET_WORDS}$")
_STANDARD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}
_OWN_FIELDS = frozenset({"object", "trace_id", "span_id"})
_TRACEBACK_FORMATTER = logging.Formatter()


def redact_text(text: str) -> str:
    """Replace anything in `text` that looks like a credential by `[REDACTED]`."""
    text = _KEY_VALUE.sub(_redacted_value, text)
    text = _BEARER.sub(rf"\1 {REDACTED}", text)
    return _JWT.sub(REDACTED, text)


def _redacted_value(match: re.Match[str]) -> str:
    value = match.group(0)[len(match.group("key")) :]
    quote = value[0] if value[:1] in ("'", '"') and value[-1:] == value[:1] else ""
    return f"{match.group('key')}{quote}{REDACTED}{quote}"


def redact_value(key: str, value: object) -> object:
    """Redact an extra field: whole value when its key names a secret, else every string inside it."""
    if _SECRET_KEY.search(key):
        return REDACTED
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {str(k): redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value("", each) for each in value]
    return value


class RedactingFilter(logging.Filter):
    """Rewrites message, exception text and extra fields of every record so no credential-like text remains.

    Installed on the handler, it runs before formatting; it renders the message (`msg % args`) itself so a
    secret passed as an argument is caught too. It never drops a record.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact in place; always keep the record."""
        try:
            record.msg, record.args = redact_text(record.getMessage()), ()
        except Exception:  # a malformed call (wrong args); let the handler report it as logging does
            return True
        if record.exc_info and not record.exc_text:
            record.exc_text = _TRACEBACK_FORMATTER.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info)
        for key in _extra_fields(record):
            setattr(record, key, redact_value(key, getattr(record, key)))
        return True


class TraceContextFilter(logging.Filter):
    """Stamps `trace_id` and `span_id` of the current span on the record (in the thread that logs)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Add the ids when a valid span is current; always keep the record."""
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            record.trace_id = format(context.trace_id, "032x")
            record.span_id = format(context.span_id, "016x")
        return True


class JsonFormatter(logging.Formatter):
    """Formats a record as one line of JSON (newlines inside values are escaped by JSON itself)."""

    def format(self, record: logging.LogRecord) -> str:
        """The JSON line for `record`; see the module docstring for the fields."""
        entry: dict[str, object] = {
            "time": _rfc3339(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("object", "trace_id", "span_id"):
            if getattr(record, key, None) is not None:
                entry[key] = getattr(record, key)
        entry.update((key, getattr(record, key)) for key in _extra_fields(record))
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, default=str, ensure_ascii=False, separators=(",", ":"))


class _ServiceHandler(logging.StreamHandler[TextIO]):
    """The handler `configure` installs; its own class so a second `configure` replaces exactly it."""


def configure(level: str | int, *, stream: TextIO | None = None) -> logging.Handler:
    """Send all logs to `stream` (default stderr) as JSON lines at `level` ("debug", "info", ...).

    Idempotent: calling it again replaces the handler it installed before and leaves other handlers (a test
    runner's capture, say) alone. Returns the handler, so tests can remove it.

    Raises:
        ValueError: `level` is not a logging level name.
    """
    threshold = _level_number(level)
    root = logging.getLogger()
    for old in [each for each in root.handlers if isinstance(each, _ServiceHandler)]:
        root.removeHandler(old)
    handler = _ServiceHandler(stream or sys.stderr)
    handler.addFilter(RedactingFilter())
    handler.addFilter(TraceContextFilter())
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)
    root.setLevel(threshold)
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(max(threshold, logging.WARNING))
    return handler


def _level_number(level: str | int) -> int:
    if isinstance(level, int):
        return level
    number = logging.getLevelName(level.upper())
    if not isinstance(number, int):
        raise ValueError(f"unknown log level {level!r}: use debug, info, warning or error")
    return number


def object_ref(kind: str, name: str, namespace: str | None = None) -> str:
    """`Kind/namespace/name`, or `Kind/name` for cluster-scoped objects such as NodeImage."""
    return f"{kind}/{namespace}/{name}" if namespace else f"{kind}/{name}"


class ObjectLogger(logging.LoggerAdapter[logging.Logger]):
    """A logger bound to one object: every record carries `object`, merged with the call's own `extra`."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        """Merge the bound fields under the call's `extra` (the call wins on a clash)."""
        kwargs["extra"] = {**(self.extra or {}), **(kwargs.get("extra") or {})}
        return msg, kwargs


def bind(logger: logging.Logger, *, kind: str, name: str, namespace: str | None = None) -> ObjectLogger:
    """A logger whose records name the object `kind/namespace/name` (see `object_ref`)."""
    return ObjectLogger(logger, {"object": object_ref(kind, name, namespace)})


def _extra_fields(record: logging.LogRecord) -> list[str]:
    """Attributes set through `extra=`: everything a plain LogRecord does not have, minus our own fields."""
    return [key for key in vars(record) if key not in _STANDARD_FIELDS and key not in _OWN_FIELDS]


def _rfc3339(created: float) -> str:
    moment = datetime.datetime.fromtimestamp(created, datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
