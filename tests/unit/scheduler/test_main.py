"""`prepull-scheduler` with a bad flag exits 2 with a one-line message, as the other two services do."""

from __future__ import annotations

import pytest

from services.scheduler.__main__ import main


def test_unknown_flag_exits_2_naming_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--no-such-flag"]) == 2

    err = capsys.readouterr().err
    assert "--no-such-flag" in err
    assert "Traceback" not in err


def test_invalid_duration_exits_2_naming_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--expectation-timeout", "soon"]) == 2

    assert "--expectation-timeout" in capsys.readouterr().err
