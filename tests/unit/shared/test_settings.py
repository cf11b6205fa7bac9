"""Flag parsing is a pure function of (argv, environ): durations, addresses, env fallbacks, help and errors."""

from __future__ import annotations

import datetime

import pytest

from services.shared import settings
from services.shared.settings import SettingsError


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        pytest.param("30s", 30, id="seconds"),
        pytest.param("10m", 600, id="minutes"),
        pytest.param("24h", 86400, id="hours"),
        pytest.param("1h30m", 5400, id="compound"),
        pytest.param("1.5h", 5400, id="fractional-unit"),
        pytest.param("500ms", 0.5, id="milliseconds"),
        pytest.param("45", 45, id="plain-seconds"),
        pytest.param("2.5", 2.5, id="plain-fraction"),
        pytest.param(" 0 ", 0, id="zero-with-spaces"),
        pytest.param("1m30s", 90, id="minutes-and-seconds"),
    ],
)
def test_durations_parse(text, seconds):
    assert settings.parse_duration(text) == datetime.timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("", "invalid duration ''", id="empty"),
        pytest.param("ten", "use seconds", id="words"),
        pytest.param("10d", "units ms, s, m, h", id="unknown-unit"),
        pytest.param("-5s", "must not be negative", id="negative"),
        pytest.param("5 s", "invalid duration '5 s'", id="space-inside"),
        pytest.param("1e400", "invalid duration", id="exponent"),
        pytest.param("99999999999999h", "too large", id="overflow"),
    ],
)
def test_bad_durations_say_what_is_accepted(text, expected):
    with pytest.raises(ValueError, match=expected) as raised:
        settings.parse_duration(text)
    assert repr(text) in str(raised.value)


def test_http_addresses():
    assert settings.parse_http_address(":8080") == ("", 8080)
    assert settings.parse_http_address("127.0.0.1:0") == ("127.0.0.1", 0)
    assert settings.parse_http_address("[::1]:9090") == ("::1", 9090)
    assert settings.parse_http_address("0") is None
    assert settings.parse_http_address("") is None
    for bad in ("8080", "host:", "host:99999", "host:http"):
        with pytest.raises(ValueError, match="invalid listen address"):
            settings.parse_http_address(bad)


def parser() -> settings.FlagParser:
    built = settings.service_parser("prepull-test", "A test service.")
    built.add_env_argument("--node-name", env="NODE_NAME", required=True, help="this node")
    built.add_argument("--resync", type=settings.duration, default="30s", help="resync period")
    return built


def test_defaults_and_environment():
    flags = parser().parse_flags([], {"NODE_NAME": "node-a", "UNRELATED": "x"})
    common = settings.CommonSettings.from_flags(flags)

    assert common == settings.CommonSettings(
        kubeconfig="", grpc_address="[::]:9090", metrics_address=":8080", health_address=":8081", log_level="info"
    )
    assert flags.node_name == "node-a"
    assert flags.resync == datetime.timedelta(seconds=30)


def test_command_line_wins_over_environment_which_wins_over_default():
    environ = {"NODE_NAME": "from-env", "KUBECONFIG": "/env/kubeconfig"}

    flags = parser().parse_flags(["--node-name", "from-flag", "--log-level=DEBUG", "--resync=1m"], environ)

    assert flags.node_name == "from-flag"
    assert flags.kubeconfig == "/env/kubeconfig"
    assert flags.log_level == "debug"
    assert flags.resync == datetime.timedelta(minutes=1)


def test_parsing_is_pure():
    built = parser()
    first = built.parse_flags([], {"NODE_NAME": "a"})
    second = built.parse_flags([], {"NODE_NAME": "b"})
    assert (first.node_name, second.node_name) == ("a", "b")
    with pytest.raises(SettingsError):
        built.parse_flags([], {})


def test_empty_environment_value_counts_as_unset():
    with pytest.raises(SettingsError, match="--node-name"):
        parser().parse_flags([], {"NODE_NAME": ""})


@pytest.mark.parametrize(
    ("argv", "environ", "expected"),
    [
        pytest.param([], {}, "the following arguments are required: --node-name", id="missing-required"),
        pytest.param(
            ["--resync=soon"], {"NODE_NAME": "n"}, "argument --resync: invalid duration 'soon'", id="duration"
        ),
        pytest.param(["--log-level=loud"], {"NODE_NAME": "n"}, "argument --log-level: invalid choice", id="level"),
        pytest.param(["--metrics-address=8080"], {"NODE_NAME": "n"}, "invalid listen address '8080'", id="address"),
        pytest.param(["--grpc-address=:9090"], {"NODE_NAME": "n"}, "invalid gRPC address ':9090'", id="grpc-no-host"),
        pytest.param(["--bogus"], {"NODE_NAME": "n"}, "unrecognized arguments: --bogus", id="unknown-flag"),
    ],
)
def test_errors_name_the_flag_and_do_not_exit(argv, environ, expected):
    with pytest.raises(SettingsError, match=r"^prepull-test: ") as raised:
        parser().parse_flags(argv, environ)
    assert expected in str(raised.value)


def test_a_bad_environment_value_names_its_variable():
    built = settings.service_parser("prepull-test", "A test service.")
    built.add_env_argument("--workers", env="WORKERS", type=int, default=4, help="pull workers")

    with pytest.raises(SettingsError, match=r"invalid int value: 'many' \(from environment variable WORKERS\)"):
        built.parse_flags([], {"WORKERS": "many"})
    with pytest.raises(SettingsError) as overridden:
        built.parse_flags(["--workers=lots"], {"WORKERS": "many"})
    assert "environment" not in str(overridden.value)


def test_grpc_addresses_accept_grpc_forms():
    for good in ("[::]:9090", "127.0.0.1:0", "localhost:50051", "unix:/run/prepull.sock"):
        assert parser().parse_flags([f"--grpc-address={good}"], {"NODE_NAME": "n"}).grpc_address == good


def test_help_documents_every_flag_with_its_default(capsys):
    with pytest.raises(SystemExit) as exited:
        parser().parse_flags(["--help"], {})
    assert exited.value.code == 0
    text = " ".join(capsys.readouterr().out.split())

    assert "A test service." in text
    for fragment in (
        "--kubeconfig PATH kubeconfig file to reach the API server;",
        'ServiceAccount configuration [env KUBECONFIG] (default: "")',
        "--grpc-address GRPC_ADDRESS gRPC listen address (default: [::]:9090)",
        '(may equal --metrics-address); "0" disables it (default: :8081)',
        "disables it (default: :8080)",
        "{debug,info,warning,error} log threshold (default: info)",
        "--node-name NODE_NAME this node [env NODE_NAME] (required)",
        "--resync RESYNC resync period (default: 30s)",
    ):
        assert fragment in text
