"""Flags: upstream's defaults, and every flag documented."""

from __future__ import annotations

import pytest

from services.scheduler import settings
from services.shared import settings as common


def test_defaults_are_upstreams() -> None:
    parsed = settings.parse([], environ={})
    assert parsed.job_workers == 3
    assert parsed.tag_policy.always_ttl_extra_seconds == 300
    assert parsed.tag_policy.never_repull_interval_seconds == 86400
    assert parsed.tag_policy.never_repull_jitter_seconds == 600
    assert parsed.tag_policy.never_min_deadline_seconds == 1800
    assert parsed.nodeimage_expectation_requeue_seconds == 5.0
    assert parsed.expectation_timeout_seconds == 300.0
    assert parsed.cache_sync_timeout_seconds == 120.0
    assert parsed.max_pulls_in_flight == 0
    assert parsed.leader_election.enabled is True
    assert parsed.leader_election.resource_name == "prepull-scheduler"


def test_timers_take_durations() -> None:
    parsed = settings.parse(
        ["--never-repull-interval", "1h", "--nodeimage-expectation-requeue", "500ms", "--cache-sync-timeout", "10m"],
        environ={},
    )
    assert parsed.tag_policy.never_repull_interval_seconds == 3600
    assert parsed.nodeimage_expectation_requeue_seconds == 0.5
    assert parsed.cache_sync_timeout_seconds == 600


def test_ttl_extra_out_of_range_is_refused() -> None:
    with pytest.raises(common.SettingsError, match="--default-ttlseconds-for-always-nodeimage"):
        settings.parse(["--default-ttlseconds-for-always-nodeimage", "2678401"], environ={})


def test_help_documents_every_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        settings.parse(["--help"], environ={})
    text = capsys.readouterr().out
    for flag in ("--never-repull-interval", "--max-pulls-in-flight", "--puller-service-account", "--jobs-audience"):
        assert flag in text
    assert "default: 24h" in text or "86400" in text
