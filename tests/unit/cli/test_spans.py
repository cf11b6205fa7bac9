"""Reading one trace's spans from the local receiver's JSON-lines file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.cli import spans
from tests.unit.cli.builders import TRACE_ID, a_record, a_span

OTHER_TRACE = "0af7651916cd43dd8448eb211c80319c"


def write_lines(path: Path, *records: object, tail: str = "") -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + tail)
    return path


def test_only_the_asked_trace_is_loaded_with_every_field(tmp_path: Path) -> None:
    wanted = a_span(1, "pull", node="n1", error=True, status_message="boom", attrs={"prepull.pull.attempt": 2})
    path = write_lines(tmp_path / "spans.jsonl", a_record(wanted), a_record(a_span(2, "x", trace_id=OTHER_TRACE)))

    assert spans.load_trace(path, TRACE_ID) == [wanted]


def test_a_span_stored_twice_counts_once(tmp_path: Path) -> None:
    record = a_record(a_span(1, "pull"))
    path = write_lines(tmp_path / "spans.jsonl", record, record)

    assert len(spans.load_trace(path, TRACE_ID)) == 1


def test_a_last_line_still_being_written_is_left_for_later(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "spans.jsonl", a_record(a_span(1, "done")), tail='{"trace_id": "4bf9')

    assert [s.name for s in spans.load_trace(path, TRACE_ID)] == ["done"]


def test_a_file_that_is_not_a_span_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "spans.jsonl"
    path.write_text("hello\n")

    with pytest.raises(ValueError, match=r"spans\.jsonl:1: not a JSON span record"):
        spans.load_trace(path, TRACE_ID)


def test_a_record_of_the_trace_missing_a_field_is_an_error(tmp_path: Path) -> None:
    record = a_record(a_span(1, "pull"))
    del record["start_time_unix_nano"]
    path = write_lines(tmp_path / "spans.jsonl", record)

    with pytest.raises(ValueError, match="malformed span record"):
        spans.load_trace(path, TRACE_ID)


def test_the_trace_id_may_be_given_in_upper_case(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "spans.jsonl", a_record(a_span(1, "pull")))

    assert len(spans.load_trace(path, TRACE_ID.upper())) == 1


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("4bf92f3577b34da6a3ce929d0e0e473", id="too-short"),
        pytest.param("4bf92f3577b34da6a3ce929d0e0e4736a", id="too-long"),
        pytest.param("4bf92f3577b34da6a3ce929d0e0e473g", id="not-hex"),
        pytest.param("0" * 32, id="all-zero-is-invalid"),
        pytest.param("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", id="a-whole-traceparent"),
    ],
)
def test_invalid_trace_ids_are_refused(value: str) -> None:
    with pytest.raises(ValueError, match="trace id"):
        spans.normalize_trace_id(value)


def test_a_span_never_has_a_negative_duration() -> None:
    assert a_span(1, "skewed", start_ms=10, end_ms=5).duration_ns == 0
