"""The waterfall: spans of one trace in, text lines out, grouped by node, indented by parent, scaled to the trace."""

from __future__ import annotations

import pytest

from services.cli import waterfall
from services.cli.spans import Span
from tests.unit.cli.builders import TRACE_ID, a_span

NGINX = {
    "container.image.name": "docker.io/library/nginx",
    "container.image.tags": ["1.25"],
    "container.image.repo_digests": ["docker.io/library/nginx@sha256:0123456789abcdef0123456789abcdef"],
    "prepull.image.size_bytes": 29_000_000,
}


def one_job_trace() -> list[Span]:
    """A job pulled on two nodes: the pull on node-b fails; the scheduler serves node-a's credentials RPC."""
    return [
        a_span(1, "reconcile", service="scheduler", start_ms=0, end_ms=1000),
        a_span(2, "NodeImage write", parent=1, service="scheduler", start_ms=100, end_ms=150, node="node-a"),
        a_span(3, "NodeImage write", parent=1, service="scheduler", start_ms=150, end_ms=200, node="node-b"),
        a_span(
            4, "pull", parent=2, start_ms=300, end_ms=900, node="node-a", attrs={**NGINX, "prepull.pull.attempt": 1}
        ),
        a_span(7, "PullImage", parent=4, start_ms=350, end_ms=875),
        a_span(5, "Credentials/Get", parent=4, start_ms=300, end_ms=325),
        a_span(6, "Credentials/Get", parent=5, service="scheduler", start_ms=305, end_ms=320),
        a_span(
            8,
            "pull",
            parent=3,
            start_ms=300,
            end_ms=500,
            node="node-b",
            error=True,
            status_message="500 from registry",
            attrs={"prepull.pull.attempt": 2, "error.type": "ErrImagePull"},
        ),
    ]


def test_a_job_trace_is_drawn_per_node_with_bars_on_one_time_axis() -> None:
    lines = waterfall.render(one_job_trace(), bar_width=20)

    assert lines == [
        f"trace {TRACE_ID}  8 spans  2 services  2 nodes  1.00s  1 ✗",
        "                                0       500ms    1.00s",
        "[no node]",
        "reconcile             scheduler |████████████████████|   1.00s",
        "[node-a]",
        "NodeImage write       scheduler |  █                 |    50ms",
        "  pull                puller    |      ████████████  |   600ms   image=docker.io/library/nginx:1.25"
        " digest=sha256:0123456789ab size=27.7MiB attempt=1",
        "    Credentials/Get   puller    |      █             |    25ms",
        "      Credentials/Get scheduler |      █             |    15ms",
        "    PullImage         puller    |       ███████████  |   525ms",
        "[node-b]",
        "NodeImage write       scheduler |   █                |    50ms",
        "  pull                puller    |      ████          |   200ms ✗ attempt=2 error=ErrImagePull",
    ]


def test_a_span_without_a_node_runs_on_its_parents_node() -> None:
    spans = [
        a_span(1, "pull", node="node-a"),
        a_span(2, "PullImage", parent=1),
        a_span(3, "ImageStatus", parent=2),
    ]

    groups = waterfall.group_by_node(spans, {s.span_id: s for s in spans})

    assert {node: [s.name for s in members] for node, members in groups.items()} == {
        "node-a": ["pull", "PullImage", "ImageStatus"]
    }


def test_spans_of_no_node_come_first_then_nodes_by_name() -> None:
    spans = [a_span(1, "b", node="node-b"), a_span(2, "a", node="node-a"), a_span(3, "reconcile")]

    groups = waterfall.group_by_node(spans, {s.span_id: s for s in spans})

    assert list(groups) == [waterfall.NO_NODE, "node-a", "node-b"]


def test_a_span_whose_parent_is_missing_starts_a_tree_at_the_margin() -> None:
    spans = [a_span(2, "pull", parent=99, start_ms=5), a_span(3, "PullImage", parent=2, start_ms=6)]

    assert [(depth, s.name) for depth, s in waterfall.tree_order(spans)] == [(0, "pull"), (1, "PullImage")]


def test_siblings_are_ordered_by_start_time() -> None:
    spans = [
        a_span(1, "task", start_ms=0, end_ms=10),
        a_span(2, "third", parent=1, start_ms=7),
        a_span(3, "first", parent=1, start_ms=1),
        a_span(4, "second", parent=1, start_ms=4),
    ]

    assert [s.name for _, s in waterfall.tree_order(spans)] == ["task", "first", "second", "third"]


def test_parent_cycles_in_bad_data_still_show_every_span_once() -> None:
    spans = [a_span(1, "a", parent=2, node="n"), a_span(2, "b", parent=1), a_span(3, "self", parent=3)]

    rows = [line.split()[0] for line in waterfall.render(spans) if "|" in line]

    assert sorted(rows) == ["a", "b", "self"]


@pytest.mark.parametrize(
    ("start_ms", "end_ms", "bar"),
    [
        pytest.param(0, 100, "██████████", id="whole-trace"),
        pytest.param(50, 100, "     █████", id="second-half"),
        pytest.param(0, 10, "█         ", id="first-tenth"),
        pytest.param(42, 42, "    █     ", id="instant-gets-one-character"),
        pytest.param(100, 100, "         █", id="instant-at-the-end-stays-inside"),
    ],
)
def test_bars_are_scaled_to_the_whole_trace(start_ms: int, end_ms: int, bar: str) -> None:
    spans = [a_span(1, "root", start_ms=0, end_ms=100), a_span(2, "x", parent=1, start_ms=start_ms, end_ms=end_ms)]

    row = waterfall.render(spans, bar_width=10)[-1]

    assert row.split("|")[1] == bar


def test_an_error_without_a_type_shows_the_status_message() -> None:
    span = a_span(1, "pull", error=True, status_message="manifest unknown")

    assert waterfall.key_attributes(span) == ["error=manifest unknown"]


def test_long_names_are_cut_so_bars_stay_aligned() -> None:
    spans = [a_span(1, "x" * 100), a_span(2, "short", start_ms=0)]

    long, short = sorted(waterfall.render(spans)[3:5], key=lambda line: "xxx" not in line)

    assert long.index("|") == short.index("|") == waterfall.MAX_NAME_WIDTH + len(" puller ")
    assert long.startswith("x" * (waterfall.MAX_NAME_WIDTH - 1) + "… puller |")


def test_no_spans_says_so() -> None:
    assert waterfall.render([]) == ["no spans"]


@pytest.mark.parametrize(
    ("nanoseconds", "text"),
    [
        pytest.param(850_000, "850µs", id="microseconds"),
        pytest.param(1_500_000, "1.5ms", id="few-milliseconds"),
        pytest.param(120_000_000, "120ms", id="milliseconds"),
        pytest.param(1_234_000_000, "1.23s", id="seconds"),
        pytest.param(123_000_000_000, "2m03s", id="minutes"),
    ],
)
def test_durations_are_short(nanoseconds: int, text: str) -> None:
    assert waterfall.format_duration(nanoseconds) == text


@pytest.mark.parametrize(
    ("size", "text"),
    [
        pytest.param(512, "512B", id="bytes"),
        pytest.param(1536, "1.5KiB", id="kibibytes"),
        pytest.param(29_000_000, "27.7MiB", id="mebibytes"),
        pytest.param(3 * 1024**4, "3072.0GiB", id="gibibytes-is-the-largest-unit"),
    ],
)
def test_sizes_use_binary_units(size: int, text: str) -> None:
    assert waterfall.format_bytes(size) == text


@pytest.mark.parametrize(
    ("reference", "short"),
    [
        pytest.param("docker.io/library/nginx@sha256:" + "ab" * 32, "sha256:abababababab", id="repo-digest"),
        pytest.param("sha256:" + "cd" * 32, "sha256:cdcdcdcdcdcd", id="bare-digest"),
        pytest.param("not-a-digest", "not-a-digest", id="unknown-form-shown-as-is"),
    ],
)
def test_digests_are_shortened(reference: str, short: str) -> None:
    assert waterfall.short_digest(reference) == short


def test_an_image_without_tags_is_shown_by_name() -> None:
    span = a_span(1, "pull", attrs={"container.image.name": "registry.local/app", "prepull.pull.attempt": 3})

    assert waterfall.key_attributes(span) == ["image=registry.local/app", "attempt=3"]
