"""Drawing one trace as a per-node waterfall of text lines: spans in, lines out, no I/O.

A job's trace spans the scheduler (reconcile, NodeImage writes), nodeimage_sync, and one puller per node. What
a reader wants to see is "what happened on each node, and when", so rows are grouped by node and indented by
parent, and every bar is drawn on one time axis: the whole trace, from its first start to its last end.

A span's node is its `k8s.node.name` attribute or, without one, its parent's node (a CRI call made by a
puller's task span is on the task's node; so is the credentials RPC the scheduler serves for it). Spans with no
node anywhere up their chain (the scheduler's reconcile) form the first group. Inside a group, a span whose
parent is in another group (or missing from the data) starts a new tree at the left margin.

Each row shows the name indented by depth, the service, the bar, the duration, an error mark (`✗`) and the
attributes worth reading at a glance: image, digest, size, attempt, and the error's type or message.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from services.cli.spans import Span
from services.shared.telemetry import attributes

NO_NODE = "no node"
"""Group of the spans that belong to no node (cluster-wide work such as reconciling the job); never a node's
name, which cannot contain a space."""
BAR = "█"
ERROR_MARK = "✗"
ELLIPSIS = "…"
INDENT = "  "
MAX_NAME_WIDTH = 56
"""Longer (indented) span names are cut: bars stay aligned on an ordinary terminal."""
DIGEST_HEX_SHOWN = 12
"""Hex digits of a digest shown, like `docker images` shows short ids."""


def render(spans: Sequence[Span], *, bar_width: int = 40) -> list[str]:
    """The waterfall of one trace, one string per line (no trailing newlines).

    Args:
        spans: the spans of one trace, in any order.
        bar_width: characters of the time axis; the trace's whole duration fills it.

    Returns:
        A header line, an axis line, then per node a heading line (`[node-a]`, `[no node]`) and one row per
        span. With no spans, a single line that says so.
    """
    if not spans:
        return ["no spans"]
    t0 = min(s.start_ns for s in spans)
    total = max(max(s.end_ns for s in spans) - t0, 1)
    by_id = {s.span_id: s for s in spans}
    groups = {node: tree_order(members) for node, members in group_by_node(spans, by_id).items()}
    rows = [row for ordered in groups.values() for row in ordered]
    name_width = min(max(len(INDENT * depth + span.name) for depth, span in rows), MAX_NAME_WIDTH)
    service_width = max(len(span.service) for _, span in rows)
    lead = name_width + 1 + service_width + 1
    lines = [_header(spans, total, node_count=sum(1 for node in groups if node != NO_NODE))]
    lines.append(" " * lead + _axis(total, bar_width))
    for node, ordered in groups.items():
        lines.append(f"[{node}]")
        lines.extend(
            _row(span, depth=depth, t0=t0, total=total, widths=(name_width, service_width, bar_width))
            for depth, span in ordered
        )
    return lines


def _row(span: Span, *, depth: int, t0: int, total: int, widths: tuple[int, int, int]) -> str:
    name_width, service_width, bar_width = widths
    label = _fit(INDENT * depth + span.name, name_width)
    bar = _bar(span, t0=t0, total=total, width=bar_width)
    mark = ERROR_MARK if span.error else " "
    details = " ".join(key_attributes(span))
    row = f"{label:<{name_width}} {span.service:<{service_width}} |{bar}| {format_duration(span.duration_ns):>7} {mark}"
    return (row + (" " + details if details else "")).rstrip()


def node_of(span: Span, by_id: Mapping[str, Span]) -> str | None:
    """The node `span` ran for: its own `k8s.node.name`, else the nearest ancestor's; None when nowhere."""
    seen: set[str] = set()
    current: Span | None = span
    while current is not None and current.span_id not in seen:
        node = current.attributes.get(attributes.K8S_NODE_NAME)
        if node:
            return str(node)
        seen.add(current.span_id)
        current = by_id.get(current.parent_span_id)
    return None


def group_by_node(spans: Sequence[Span], by_id: Mapping[str, Span]) -> dict[str, list[Span]]:
    """Spans per node heading: `NO_NODE` first (when any), then nodes by name."""
    groups: dict[str, list[Span]] = {}
    for span in spans:
        groups.setdefault(node_of(span, by_id) or NO_NODE, []).append(span)
    order = sorted(groups, key=lambda node: (node != NO_NODE, node))
    return {node: groups[node] for node in order}


def tree_order(spans: Sequence[Span]) -> list[tuple[int, Span]]:
    """`spans` depth-first, each with its depth; siblings by start time.

    Roots are the spans whose parent is not among `spans`. Spans caught in a parent cycle (bad data, but
    a reader should still see them) become roots too, so every span is listed exactly once.
    """
    ids = {s.span_id for s in spans}
    children: dict[str, list[Span]] = {}
    roots: list[Span] = []
    for span in spans:
        if span.parent_span_id in ids and span.parent_span_id != span.span_id:
            children.setdefault(span.parent_span_id, []).append(span)
        else:
            roots.append(span)
    ordered: list[tuple[int, Span]] = []
    visited: set[str] = set()
    for root in [*sorted(roots, key=_chronological), *sorted(spans, key=_chronological)]:
        if root.span_id not in visited:
            ordered.extend(_depth_first(root, children, visited))
    return ordered


def _depth_first(root: Span, children: Mapping[str, list[Span]], visited: set[str]) -> list[tuple[int, Span]]:
    ordered: list[tuple[int, Span]] = []
    stack = [(0, root)]
    while stack:
        depth, span = stack.pop()
        if span.span_id in visited:
            continue
        visited.add(span.span_id)
        ordered.append((depth, span))
        stack.extend((depth + 1, c) for c in sorted(children.get(span.span_id, []), key=_chronological, reverse=True))
    return ordered


def key_attributes(span: Span) -> list[str]:
    """`key=value` words for the attributes worth a glance: image, digest, size, attempt, error."""
    attrs = span.attributes
    words: list[str] = []
    image = attrs.get(attributes.CONTAINER_IMAGE_NAME)
    if image:
        tags = _as_list(attrs.get(attributes.CONTAINER_IMAGE_TAGS))
        words.append(f"image={image}" + (f":{tags[0]}" if tags else ""))
    digests = _as_list(attrs.get(attributes.CONTAINER_IMAGE_REPO_DIGESTS))
    if digests:
        words.append(f"digest={short_digest(str(digests[0]))}")
    size = attrs.get(attributes.IMAGE_SIZE_BYTES)
    if isinstance(size, int | float) and not isinstance(size, bool):
        words.append(f"size={format_bytes(int(size))}")
    attempt = attrs.get(attributes.PULL_ATTEMPT)
    if attempt is not None:
        words.append(f"attempt={attempt}")
    error = attrs.get(attributes.ERROR_TYPE) or (span.status_message if span.error else "")
    if error:
        words.append(f"error={error}")
    return words


def short_digest(reference: str) -> str:
    """`repo@sha256:abc…` or `sha256:abc…` cut to the algorithm and the first hex digits."""
    digest = reference.rpartition("@")[2]
    algorithm, _, hex_digits = digest.partition(":")
    if not hex_digits:
        return digest
    return f"{algorithm}:{hex_digits[:DIGEST_HEX_SHOWN]}"


def format_duration(nanoseconds: int) -> str:
    """A short human duration: `850µs`, `12ms`, `1.23s`, `2m03s`."""
    if nanoseconds < 1_000_000:
        return f"{nanoseconds // 1_000}µs"
    if nanoseconds < 1_000_000_000:
        milliseconds = nanoseconds / 1_000_000
        return f"{milliseconds:.1f}ms" if milliseconds < 10 else f"{milliseconds:.0f}ms"
    seconds = nanoseconds / 1_000_000_000
    if seconds < 60:
        return f"{seconds:.2f}s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}m{rest:02d}s"


def format_bytes(size: int) -> str:
    """Binary units, as container runtimes report image sizes: `512B`, `1.5KiB`, `28.2MiB`."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{size}B" if unit == "B" else f"{value:.1f}{unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _header(spans: Sequence[Span], total: int, *, node_count: int) -> str:
    services = len({s.service for s in spans})
    errors = sum(1 for s in spans if s.error)
    parts = [
        f"trace {spans[0].trace_id}",
        f"{len(spans)} spans",
        f"{services} service{'s' * (services != 1)}",
        f"{node_count} node{'s' * (node_count != 1)}",
        format_duration(total),
    ]
    if errors:
        parts.append(f"{errors} {ERROR_MARK}")
    return "  ".join(parts)


def _axis(total: int, width: int) -> str:
    """Time labels over the bar area (whose borders are each row's `|`): start, end, and the middle if it fits."""
    inner = width + 2
    left, middle, right = "0", format_duration(total // 2), format_duration(total)
    line = left.ljust(inner - len(right)) + right
    at = (inner - len(middle)) // 2
    if at > len(left) and at + len(middle) < inner - len(right):
        line = line[:at] + middle + line[at + len(middle) :]
    return line[:inner]


def _bar(span: Span, *, t0: int, total: int, width: int) -> str:
    """`width` characters, filled where `span` ran on the trace's time axis (at least one character)."""
    start = min(int((span.start_ns - t0) * width / total), width - 1)
    end = min(max(math.ceil((span.end_ns - t0) * width / total), start + 1), width)
    return " " * start + BAR * (end - start) + " " * (width - end)


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + ELLIPSIS


def _chronological(span: Span) -> tuple[int, str, str]:
    return (span.start_ns, span.name, span.span_id)


def _as_list(value: Any) -> list[Any]:
    if value is None or value == "":
        return []
    return list(value) if isinstance(value, list | tuple) else [value]
