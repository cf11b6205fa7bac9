"""Command-line flags shared by every service, parsed as a pure function of (argv, environ).

Each service builds its parser with `service_parser()`, which already holds the flags design §2 gives every
service (`--kubeconfig`, `--grpc-address`, `--metrics-address`, `--health-address`, `--log-level`), adds its
own flags, and calls `parser.parse_flags(argv, environ)`. Nothing here reads `os.environ`: the entry point
passes it in, so tests pass a plain dict and get the same answer every time (style principle 9).

Environment fallbacks are explicit. `add_env_argument("--node-name", env="NODE_NAME")` records that the flag
may come from `NODE_NAME` (the Kubernetes downward-API convention) and says so in `--help`. A flag given on the
command line wins over the environment, which wins over the default. The environment is applied by placing
`--flag=value` before the real arguments, so an environment value is converted and validated by exactly the
same `type=` and `choices=` as a command-line one, and its error names the variable it came from.

`--help` documents every flag with its default (or marks it required); defaults are written as the user would
type them (`"30s"`, not a `timedelta`), and argparse runs them through `type=` like any other value.

Errors raise `SettingsError` instead of printing and exiting, so parsing stays testable; the entry point
prints the message and exits with status 2, as argparse would.
"""

from __future__ import annotations

import argparse
import datetime
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

LOG_LEVELS = ("debug", "info", "warning", "error")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_PLAIN_SECONDS = re.compile(_NUMBER)
_WITH_UNITS = re.compile(rf"(?:{_NUMBER}(?:ms|h|m|s))+")
_COMPONENT = re.compile(rf"({_NUMBER})(ms|h|m|s)")
_DURATION_HINT = 'use seconds ("45", "2.5") or numbers with units ms, s, m, h ("30s", "10m", "24h", "1h30m")'
# 1 << 16 ports; port 0 asks the kernel for a free one (tests).
_MAX_PORT = 65535
_DISABLED_ADDRESSES = ("", "0")


class SettingsError(ValueError):
    """Flags or environment variables that cannot be used; the message names the flag and the problem."""


def parse_duration(text: str) -> datetime.timedelta:
    """Parse "30s", "10m", "24h", "1h30m", "500ms" or plain seconds ("45", "2.5") into a timedelta.

    The unit syntax is Go's `time.ParseDuration` (what Kubernetes users already write in flags), restricted to
    the units a timer here can use; plain numbers are seconds, as in upstream's `*Seconds` fields.

    Raises:
        ValueError: empty, negative, unknown unit, or too large; the message shows the accepted forms.
    """
    value = text.strip()
    if value.startswith("-"):
        raise ValueError(f"invalid duration {text!r}: must not be negative")
    if _PLAIN_SECONDS.fullmatch(value):
        seconds = float(value)
    elif _WITH_UNITS.fullmatch(value):
        seconds = sum(float(number) * _UNIT_SECONDS[unit] for number, unit in _COMPONENT.findall(value))
    else:
        raise ValueError(f"invalid duration {text!r}: {_DURATION_HINT}")
    try:
        return datetime.timedelta(seconds=seconds)
    except OverflowError:
        raise ValueError(f"invalid duration {text!r}: too large") from None


def duration(text: str) -> datetime.timedelta:
    """`type=` for argparse flags holding a duration; see `parse_duration`."""
    try:
        return parse_duration(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def parse_http_address(text: str) -> tuple[str, int] | None:
    """Parse a listen address "host:port", ":port" (all interfaces) or "[v6]:port"; "" or "0" means off.

    Raises:
        ValueError: not of that form, or the port is out of range.
    """
    if text in _DISABLED_ADDRESSES:
        return None
    host, separator, port = text.rpartition(":")
    if not separator or not port.isdigit() or int(port) > _MAX_PORT:
        raise ValueError(f'invalid listen address {text!r}: use "host:port", ":port" or "[::]:port" (port 0-65535)')
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def http_address(text: str) -> str:
    """`type=` for HTTP listen-address flags: validates, keeps the text (see `parse_http_address`)."""
    try:
        parse_http_address(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def grpc_address(text: str) -> str:
    """`type=` for gRPC listen addresses: "host:port", "[::]:port" or "unix:/path" (gRPC's own forms).

    gRPC cannot parse ":port" (no host), so unlike the HTTP addresses the host is required.
    """
    if text.startswith("unix:") and len(text) > len("unix:"):
        return text
    try:
        parsed = parse_http_address(text)
    except ValueError:
        parsed = None
    if parsed is None or not parsed[0]:
        raise argparse.ArgumentTypeError(f'invalid gRPC address {text!r}: use "host:port", "[::]:port" or "unix:/path"')
    return text


class _DefaultsHelpFormatter(argparse.HelpFormatter):
    """Appends each flag's default (or "required") to its help, so `--help` is the reference for operators."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "%(default)" in text or action.default is argparse.SUPPRESS or not action.option_strings:
            return text
        if action.required:
            return f"{text} (required)"
        if action.default in ("", None):
            return f'{text} (default: "")' if action.default == "" else f"{text} (default: none)"
        return f"{text} (default: %(default)s)"


class FlagParser(argparse.ArgumentParser):
    """An ArgumentParser that raises `SettingsError` and knows which flags may come from the environment."""

    def __init__(self, prog: str, description: str) -> None:
        """Create a parser whose help lists defaults; no flags yet (see `service_parser`)."""
        super().__init__(prog=prog, description=description, formatter_class=_DefaultsHelpFormatter)
        self._env_flags: dict[str, str] = {}

    def add_env_argument(self, flag: str, *, env: str, **kwargs: Any) -> argparse.Action:
        """Add a value-taking flag that falls back to environment variable `env` (named in its help)."""
        kwargs["help"] = f"{kwargs.get('help', '')} [env {env}]".strip()
        action = self.add_argument(flag, **kwargs)
        self._env_flags[flag] = env
        return action

    def parse_flags(self, argv: Sequence[str], environ: Mapping[str, str]) -> argparse.Namespace:
        """Parse `argv`, using `environ` only for flags declared with `add_env_argument` (empty = unset)."""
        from_env = [(flag, env) for flag, env in self._env_flags.items() if environ.get(env)]
        prefix = [f"{flag}={environ[env]}" for flag, env in from_env]
        try:
            return self.parse_args([*prefix, *argv])
        except SettingsError as error:
            raise SettingsError(_blame_environment(str(error), argv, from_env)) from None

    def error(self, message: str) -> NoReturn:
        """Raise instead of printing usage and exiting (the entry point decides how to report)."""
        raise SettingsError(f"{self.prog}: {message}")


def _blame_environment(message: str, argv: Sequence[str], from_env: Sequence[tuple[str, str]]) -> str:
    """Say which environment variable supplied a bad value, when the command line did not override it."""
    for flag, env in from_env:
        on_command_line = any(arg == flag or arg.startswith(f"{flag}=") for arg in argv)
        if f"argument {flag}" in message and not on_command_line:
            return f"{message} (from environment variable {env})"
    return message


@dataclass(frozen=True)
class CommonDefaults:
    """Per-service defaults of the common flags (ports differ so services can share a host in dev)."""

    grpc_address: str = "[::]:9090"
    """gRPC listen address; `[::]` is gRPC's dual-stack wildcard (it falls back to IPv4 where needed)."""
    metrics_address: str = ":8080"
    """Prometheus `/metrics` listen address; the controller-runtime convention Kubernetes users expect."""
    health_address: str = ":8081"
    """`/healthz` and `/readyz` listen address; may equal `metrics_address` to share one port."""
    log_level: str = "info"
    """Logging threshold; `debug` is verbose but still never logs a credential."""


@dataclass(frozen=True)
class CommonSettings:
    """The values of the flags every service has (design §2)."""

    kubeconfig: str
    """Path to a kubeconfig file; empty means the in-cluster ServiceAccount configuration."""
    grpc_address: str
    metrics_address: str
    health_address: str
    log_level: str

    @classmethod
    def from_flags(cls, flags: argparse.Namespace) -> CommonSettings:
        """Pick the common values out of a namespace parsed by a `service_parser()` parser."""
        return cls(
            kubeconfig=flags.kubeconfig,
            grpc_address=flags.grpc_address,
            metrics_address=flags.metrics_address,
            health_address=flags.health_address,
            log_level=flags.log_level,
        )


def service_parser(prog: str, description: str, defaults: CommonDefaults = CommonDefaults()) -> FlagParser:
    """A parser with the common flags already added; the service adds its own and calls `parse_flags`."""
    parser = FlagParser(prog, description)
    parser.add_env_argument(
        "--kubeconfig",
        env="KUBECONFIG",
        default="",
        metavar="PATH",
        help="kubeconfig file to reach the API server; empty: in-cluster ServiceAccount configuration",
    )
    parser.add_argument("--grpc-address", type=grpc_address, default=defaults.grpc_address, help="gRPC listen address")
    parser.add_argument(
        "--metrics-address",
        type=http_address,
        default=defaults.metrics_address,
        help='Prometheus /metrics listen address; "0" disables it',
    )
    parser.add_argument(
        "--health-address",
        type=http_address,
        default=defaults.health_address,
        help='/healthz and /readyz listen address (may equal --metrics-address); "0" disables it',
    )
    parser.add_argument(
        "--log-level", type=str.lower, choices=LOG_LEVELS, default=defaults.log_level, help="log threshold"
    )
    return parser
