"""The package's public surface, and its flags: upstream defaults, documented in --help, validated."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import services.nodeimage_sync as package
from services.nodeimage_sync import logic, settings
from services.nodeimage_sync.__main__ import main
from services.shared.kube import leaderelection
from services.shared.settings import SettingsError


def test_all_lists_every_module_except_the_entry_point():
    modules = {info.name for info in pkgutil.iter_modules(package.__path__)} - {"__main__"}
    assert sorted(package.__all__) == sorted(modules)
    assert sorted(logic.__all__) == sorted(info.name for info in pkgutil.iter_modules(logic.__path__))
    for name in package.__all__:
        importlib.import_module(f"services.nodeimage_sync.{name}")


def test_defaults_are_upstreams():
    parsed = settings.parse([], {"POD_NAME": "replica-1", "POD_NAMESPACE": "ops"})
    assert (parsed.creation_delay, parsed.response_timeout, parsed.workers) == (30.0, 600.0, 3)
    assert (parsed.min_requeue, parsed.requeue_jitter) == (3.0, 2.0)
    election = parsed.leader_election
    assert election.timing == leaderelection.ElectionSettings(lease_duration=15, renew_deadline=10, retry_period=2)
    assert (election.identity, election.resource_namespace) == ("replica-1", "ops")
    assert election.resource_name == "prepull-nodeimage-sync"
    assert election.enabled and parsed.auth


def test_timers_are_flags():
    parsed = settings.parse(["--creation-delay=2s", "--response-timeout=1m30s", "--node-selector=a=b,c"], {})
    assert (parsed.creation_delay, parsed.response_timeout, parsed.node_selector) == (2.0, 90.0, "a=b,c")
    assert settings.parse([], {}).own_write_wait == 10.0
    assert settings.parse(["--own-write-wait=500ms"], {}).own_write_wait == 0.5


@pytest.mark.parametrize(
    "argv",
    [
        ["--creation-delay=soon"],
        ["--workers=0"],
        ["--node-selector=a in ("],
        ["--leader-elect-lease-duration=5s", "--leader-elect-renew-deadline=10s"],
    ],
)
def test_invalid_flags_are_refused(argv: list[str]):
    with pytest.raises(SettingsError):
        settings.parse(argv, {})


def test_help_documents_every_flag_with_its_default(capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit):
        settings.build_parser().parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    for flag, default in (("--creation-delay", "30s"), ("--response-timeout", "10m"), ("--workers", "3")):
        assert flag in text
        assert f"(default: {default})" in text


def test_main_reports_bad_flags_with_status_2(capsys: pytest.CaptureFixture[str]):
    assert main(["--workers=-1"], {}) == 2
    assert "--workers" in capsys.readouterr().err
