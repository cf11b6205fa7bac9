"""The puller's flags: defaults are upstream's, the node name is required, sizes parse like quantities."""

from __future__ import annotations

import argparse

import pytest

from services.puller.settings import PullerSettings, parse_bytes, parser
from services.shared.settings import SettingsError


def test_defaults_are_upstreams() -> None:
    settings = PullerSettings.from_args([], {"NODE_NAME": "node-a"})
    assert settings.node_name == "node-a"
    assert (settings.backoff_initial, settings.backoff_max) == (1.0, 30.0)
    assert (settings.status_write_qps, settings.status_write_burst) == (0.5, 5)
    assert (settings.resync_pulling, settings.resync_jitter_pulling) == (3.0, 2.0)
    assert (settings.resync_idle, settings.resync_jitter_idle) == (1200.0, 600.0)
    assert settings.workers == 4
    assert settings.min_free_disk_bytes == 1 << 30
    assert settings.scheduler_address == ""
    assert settings.auth


def test_flag_wins_over_environment() -> None:
    settings = PullerSettings.from_args(["--node-name=b", "--workers=2", "--backoff-max=5s"], {"NODE_NAME": "a"})
    assert (settings.node_name, settings.workers, settings.backoff_max) == ("b", 2, 5.0)


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        pytest.param([], "--node-name", id="node-name-required"),
        pytest.param(["--node-name=a", "--workers=0"], "--workers", id="workers-at-least-one"),
        pytest.param(["--node-name=a", "--backoff-initial=soon"], "invalid duration", id="bad-duration"),
    ],
)
def test_invalid_flags_name_the_problem(argv: list[str], problem: str) -> None:
    with pytest.raises(SettingsError, match=problem):
        PullerSettings.from_args(argv, {})


@pytest.mark.parametrize(
    ("text", "count"),
    [("0", 0), ("1500", 1500), ("512Mi", 512 << 20), ("1Gi", 1 << 30), ("10G", 10 * 1000**3), ("2k", 2000)],
)
def test_sizes(text: str, count: int) -> None:
    assert parse_bytes(text) == count


def test_bad_size_is_refused() -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_bytes("lots")


def test_help_documents_every_flag_with_its_default() -> None:
    text = parser().format_help()
    for flag in ("--node-name", "--cri-socket", "--workers", "--min-free-disk", "--backoff-initial"):
        assert flag in text
    assert "NODE_NAME" in text
    assert "(default: 1s)" in text
