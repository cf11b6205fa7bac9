"""Turning Jaeger's trace document back into our spans, so `--jaeger-url` draws the same waterfall."""

from __future__ import annotations

import pytest

from services.cli import jaeger, waterfall
from tests.unit.cli.jaeger_documents import START_US, TRACE_ID, a_jaeger_trace


def test_spans_keep_parentage_services_times_status_and_attributes() -> None:
    reconcile, pull, pull_image = jaeger.spans_from_document(a_jaeger_trace(), TRACE_ID)

    assert (reconcile.parent_span_id, pull.parent_span_id) == ("", reconcile.span_id)
    assert pull_image.parent_span_id == pull.span_id, "the FOLLOWS_FROM link is not the parent"
    assert (reconcile.service, pull.service) == ("prepull-scheduler", "prepull-puller")
    assert (pull.start_ns, pull.end_ns) == ((START_US + 20_000) * 1000, (START_US + 80_000) * 1000)
    assert pull.error and pull_image.error and not reconcile.error
    assert pull_image.status_message == "500 from registry"
    assert pull.attributes["container.image.tags"] == ["1.25"]
    assert "otel.status_code" not in pull.attributes


def test_the_waterfall_reads_the_same_as_from_the_receiver_file() -> None:
    lines = waterfall.render(jaeger.spans_from_document(a_jaeger_trace(), TRACE_ID), bar_width=10)

    assert lines[2:] == [
        "[no node]",
        "reconcile   prepull-scheduler |██████████|   100ms",
        "[node-a]",
        "pull        prepull-puller    |  ██████  |    60ms ✗ image=docker.io/library/nginx:1.25 attempt=1",
        "  PullImage prepull-puller    |  ██████  |    50ms ✗ error=500 from registry",
    ]


def test_ids_without_leading_zeros_are_padded() -> None:
    document = a_jaeger_trace()
    for span in document["data"][0]["spans"]:
        span["spanID"] = span["spanID"].lstrip("0")
    document["data"][0]["spans"][1]["references"][0]["spanID"] = "f067aa0ba902b7"

    reconcile, pull, _ = jaeger.spans_from_document(document, TRACE_ID)

    assert reconcile.span_id == "00f067aa0ba902b7" == pull.parent_span_id


def test_spans_of_other_traces_are_left_out() -> None:
    assert jaeger.spans_from_document(a_jaeger_trace(), "4bf92f3577b34da6a3ce929d0e0e4736") == []


@pytest.mark.parametrize(
    "document",
    [
        pytest.param({"errors": [{"code": 500}]}, id="no-data"),
        pytest.param({"data": [{"spans": [{"traceID": TRACE_ID}]}]}, id="span-without-fields"),
        pytest.param([], id="not-an-object"),
    ],
)
def test_other_documents_are_refused(document: object) -> None:
    with pytest.raises(ValueError, match="Jaeger trace document"):
        jaeger.spans_from_document(document, TRACE_ID)


def test_only_http_urls_are_accepted() -> None:
    with pytest.raises(ValueError, match="not an http"):
        jaeger.load_trace("file:///etc/passwd", TRACE_ID)
