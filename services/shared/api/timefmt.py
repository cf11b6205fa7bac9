"""RFC 3339 timestamps as Kubernetes writes them, to and from timezone-aware datetimes.

Every time field of our API (`metav1.Time`: `startTime`, `createdAt`, `lastTransitionTime`, …) travels as an
RFC 3339 string. Go's `metav1.Time` writes whole seconds in UTC (`2024-05-01T10:00:00Z`); other writers
(kubectl patches, Python clients) may add a fraction or an offset, and the apiserver stores CRD fields as
given. So parsing accepts every RFC 3339 form, and formatting writes UTC with a `Z`, adding a fraction only
when there is one. That makes `format_time(parse_time(s)) == s` for every string a Go client writes, and
keeps sub-second values that other writers used (to microseconds, Python's precision; nanoseconds are
truncated).

Naive datetimes are refused on both sides: a time without a zone is a bug waiting for a machine in
another timezone.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

__all__ = ["format_time", "parse_time"]

_RFC3339 = re.compile(
    r"^(?P<date>\d{4}-\d{2}-\d{2})[Tt](?P<time>\d{2}:\d{2}:\d{2})(?:\.(?P<fraction>\d+))?"
    r"(?:(?P<utc>[Zz])|(?P<sign>[+-])(?P<hours>\d{2}):(?P<minutes>\d{2}))$"
)


def parse_time(text: str) -> datetime:
    """Parse an RFC 3339 timestamp.

    Args:
        text: e.g. `2024-05-01T10:00:00Z`, `2024-05-01T10:00:00.5+02:00`.

    Returns:
        A timezone-aware datetime in UTC; fractions beyond microseconds are truncated.

    Raises:
        ValueError: the text is not an RFC 3339 date-time.
    """
    match = _RFC3339.match(text)
    if match is None:
        raise ValueError(f"not an RFC 3339 timestamp: {text!r}")
    fraction = (match["fraction"] or "").ljust(6, "0")[:6]
    parsed = datetime.fromisoformat(f"{match['date']}T{match['time']}.{fraction}")
    return parsed.replace(tzinfo=_zone(match)).astimezone(UTC)


def format_time(moment: datetime) -> str:
    """Format an aware datetime the way the apiserver and Go clients write it: UTC, `Z`, seconds.

    A non-zero microsecond part is kept (trailing zeros trimmed), so parsed values round-trip.

    Raises:
        ValueError: the datetime is naive.
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"refusing to format a naive datetime: {moment!r}")
    utc = moment.astimezone(UTC)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    if utc.microsecond:
        text += "." + f"{utc.microsecond:06d}".rstrip("0")
    return text + "Z"


def _zone(match: re.Match[str]) -> timezone:
    """The offset written in a matched timestamp."""
    if match["utc"]:
        return UTC
    offset = timedelta(hours=int(match["hours"]), minutes=int(match["minutes"]))
    return timezone(-offset if match["sign"] == "-" else offset)
