"""The shared `--leader-elect*` flags: upstream names and defaults, environment fallbacks, validation.

The elector these settings build is exercised against the real apiserver (tests/integration/shared,
tests/integration/scheduler/test_leader.py, tests/integration/nodeimage_sync/test_process.py).
"""

from __future__ import annotations

import pytest

from services.nodeimage_sync import settings as nodeimage_sync_settings
from services.scheduler import settings as scheduler_settings
from services.shared import leadership
from services.shared import settings as shared_settings
from services.shared.kube import leaderelection

FLAGS = (
    "--leader-elect",
    "--leader-elect-lease-duration",
    "--leader-elect-renew-deadline",
    "--leader-elect-retry-period",
    "--leader-elect-resource-namespace",
    "--leader-elect-resource-name",
    "--leader-elect-identity",
)


def parse(argv: list[str], environ: dict[str, str] | None = None) -> leadership.LeaderElectionSettings:
    parser = shared_settings.service_parser("prog", "a leader-elected service")
    leadership.add_flags(parser, resource_name="prog-lease")
    return leadership.from_flags(parser.parse_flags(argv, environ or {}))


def test_defaults_are_client_gos():
    parsed = parse([])

    assert parsed.enabled
    assert parsed.timing == leaderelection.ElectionSettings(lease_duration=15, renew_deadline=10, retry_period=2)
    assert (parsed.resource_namespace, parsed.resource_name) == ("prepull-system", "prog-lease")
    assert parsed.identity  # host name and a random suffix


def test_pod_name_and_namespace_come_from_the_downward_api_and_flags_win():
    from_env = parse([], {"POD_NAME": "replica-1", "POD_NAMESPACE": "ops"})
    overridden = parse(
        ["--leader-elect-identity=me", "--leader-elect-resource-namespace=other"],
        {"POD_NAME": "replica-1", "POD_NAMESPACE": "ops"},
    )

    assert (from_env.identity, from_env.resource_namespace) == ("replica-1", "ops")
    assert (overridden.identity, overridden.resource_namespace) == ("me", "other")


def test_identities_without_a_pod_name_differ_per_process():
    assert parse([]).identity != parse([]).identity


@pytest.mark.parametrize(
    ("argv", "enabled"),
    [
        pytest.param(["--leader-elect"], True, id="bare"),
        pytest.param(["--leader-elect=true"], True, id="true"),
        pytest.param(["--leader-elect=false"], False, id="false"),
        pytest.param(["--leader-elect=0"], False, id="zero"),
        pytest.param(["--leader-elect=False", "--leader-elect-resource-name=x"], False, id="then-another-flag"),
    ],
)
def test_leader_elect_takes_an_optional_boolean_as_upstream_does(argv: list[str], enabled: bool):
    assert parse(argv).enabled is enabled


def test_timers_and_lease_are_flags():
    parsed = parse(
        [
            "--leader-elect-lease-duration=4s",
            "--leader-elect-renew-deadline=3s",
            "--leader-elect-retry-period=500ms",
            "--leader-elect-resource-name=mine",
        ]
    )

    assert parsed.timing == leaderelection.ElectionSettings(lease_duration=4, renew_deadline=3, retry_period=0.5)
    assert parsed.resource_name == "mine"


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["--leader-elect-lease-duration=5s", "--leader-elect-renew-deadline=10s"], id="renew>lease"),
        pytest.param(["--leader-elect-retry-period=10s"], id="retry=renew"),
        pytest.param(["--leader-elect-retry-period=0s"], id="retry-zero"),
        pytest.param(["--leader-elect=maybe"], id="not-a-boolean"),
        pytest.param(["--leader-elect-lease-duration=soon"], id="not-a-duration"),
    ],
)
def test_invalid_values_are_refused_naming_the_flag(argv: list[str]):
    with pytest.raises(shared_settings.SettingsError, match="--leader-elect"):
        parse(argv)


@pytest.mark.parametrize(
    ("parse_service", "lease"),
    [
        pytest.param(lambda argv: scheduler_settings.parse(argv, {}), "prepull-scheduler", id="scheduler"),
        pytest.param(lambda argv: nodeimage_sync_settings.parse(argv, {}), "prepull-nodeimage-sync", id="sync"),
    ],
)
def test_both_leader_elected_services_take_the_same_flags(parse_service, lease):
    argv = ["--leader-elect-resource-namespace=ns", "--leader-elect-identity=me", "--leader-elect-retry-period=1s"]

    election = parse_service(argv).leader_election

    assert (election.resource_namespace, election.resource_name, election.identity) == ("ns", lease, "me")
    assert election.timing.retry_period == 1.0


@pytest.mark.parametrize(
    "old",
    ["--leader-election-namespace=x", "--lease-namespace=x", "--lease-name=x", "--identity=x", "--lease-duration=9s"],
)
def test_the_old_per_service_flags_are_gone(old: str):
    with pytest.raises(shared_settings.SettingsError):
        scheduler_settings.parse([old], {})
    with pytest.raises(shared_settings.SettingsError):
        nodeimage_sync_settings.parse([old], {})


def test_help_lists_every_flag_with_its_default(capsys: pytest.CaptureFixture[str]):
    parser = shared_settings.service_parser("prog", "a leader-elected service")
    leadership.add_flags(parser, resource_name="prog-lease")
    with pytest.raises(SystemExit):
        parser.parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())

    for flag in FLAGS:
        assert flag in text
    for default in ("(default: 15s)", "(default: 10s)", "(default: 2s)", "(default: prog-lease)", "[env POD_NAME]"):
        assert default in text
