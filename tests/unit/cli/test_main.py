"""`prepull trace --trace-id`: the whole command without a cluster, from a spans file to the terminal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.cli.__main__ import main
from tests.unit.cli.builders import TRACE_ID, a_record, a_span


@pytest.fixture
def spans_file(tmp_path: Path) -> Path:
    path = tmp_path / "spans.jsonl"
    records = [
        a_record(a_span(1, "reconcile", service="scheduler", start_ms=0, end_ms=100)),
        a_record(a_span(2, "pull", parent=1, node="node-a", start_ms=10, end_ms=90, attrs={"prepull.pull.attempt": 1})),
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_a_trace_is_printed_by_id(spans_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["trace", "--trace-id", TRACE_ID, "--spans", str(spans_file), "--width", "10"])

    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert out[0] == f"trace {TRACE_ID}  2 spans  2 services  1 node  100ms"
    assert out[1] == " " * 20 + "0      100ms", "the middle label is left out where it does not fit"
    assert out[2:] == [
        "[no node]",
        "reconcile scheduler |██████████|   100ms",
        "[node-a]",
        "pull      puller    | ████████ |    80ms   attempt=1",
    ]


def test_an_unknown_trace_fails_with_one_line(spans_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["trace", "--trace-id", "0af7651916cd43dd8448eb211c80319c", "--spans", str(spans_file)])

    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("prepull: no spans of trace 0af7651916cd43dd8448eb211c80319c in ")
    assert len(err.splitlines()) == 1


def test_a_missing_spans_file_fails_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["trace", "--trace-id", TRACE_ID, "--spans", str(tmp_path / "absent.jsonl")])

    assert code == 1
    assert "is the OTLP receiver running" in capsys.readouterr().err


def test_a_bad_trace_id_fails(spans_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trace", "--trace-id", "xyz", "--spans", str(spans_file)]) == 1
    assert "not a trace id" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["trace", "--spans", "f"], id="neither-job-nor-trace-id"),
        pytest.param(["trace", "job", "--trace-id", TRACE_ID, "--spans", "f"], id="both-job-and-trace-id"),
        pytest.param(["trace", "--trace-id", TRACE_ID], id="no-spans-file"),
        pytest.param(["trace", "--trace-id", TRACE_ID, "--spans", "f", "--width", "0"], id="zero-width"),
    ],
)
def test_usage_errors_exit_with_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)

    assert exited.value.code == 2
    assert capsys.readouterr().err


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "trace" in capsys.readouterr().err
