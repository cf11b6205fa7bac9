"""The puller's flags: `PullerSettings`, parsed once from (argv, environ) and passed down (style principle 9).

Every timer is a flag whose default is upstream's value (design §2): the retry sleep (1 s doubling to 30 s),
the status write rate (0.5/s, burst 5) and the sync requeues (3 s + up to 2 s while pulling, 20 min + up to
10 min when idle). `--workers` bounds concurrent pulls; upstream's default is unlimited, which lets one job
with many images saturate a node's disk and network, so ours is 4.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from services.shared import settings as shared_settings

__all__ = ["PullerSettings", "parse_bytes", "parser"]

DEFAULT_CRI_SOCKET = "unix:///run/containerd/containerd.sock"
DEFAULT_CREDENTIALS_TOKEN_FILE = "/var/run/secrets/prepull.io/credentials/token"
DEFAULT_INVENTORY_TOKEN_FILE = "/var/run/secrets/prepull.io/inventory/token"
PULLER_DEFAULTS = shared_settings.CommonDefaults(
    grpc_address="[::]:9093", metrics_address=":8084", health_address=":8085"
)
_BYTES = re.compile(r"(\d+(?:\.\d+)?)\s*([KMGTPE]i?)?B?", re.IGNORECASE)
_POWERS = {"": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "t": 1000**4, "p": 1000**5, "e": 1000**6}
_BINARY = {"ki": 1024, "mi": 1024**2, "gi": 1024**3, "ti": 1024**4, "pi": 1024**5, "ei": 1024**6}


def parse_bytes(text: str) -> int:
    """Parse a size as Kubernetes quantities write it: `512Mi`, `1Gi`, `10G`, `1500000` (bytes).

    Raises:
        argparse.ArgumentTypeError: not a size.
    """
    match = _BYTES.fullmatch(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"invalid size {text!r}: use bytes or a suffix such as 512Mi, 1Gi, 10G")
    unit = (match.group(2) or "").lower()
    return int(float(match.group(1)) * (_BINARY.get(unit) or _POWERS[unit]))


@dataclass(frozen=True)
class PullerSettings:
    """Everything the puller is configured with."""

    common: shared_settings.CommonSettings
    node_name: str
    """This node's name: the NodeImage the puller watches and writes (env NODE_NAME, from the downward API)."""
    cri_socket: str
    """The CRI endpoint (`unix:///run/containerd/containerd.sock`; a bare path is taken as a unix socket)."""
    workers: int
    """Pulls in flight at once on this node."""
    backoff_initial: float
    """Seconds slept after a failed attempt (doubles per failure)."""
    backoff_max: float
    """Longest sleep between attempts, in seconds."""
    status_write_qps: float
    status_write_burst: int
    status_write_coalesce: float
    """Seconds to gather status changes into one write."""
    resync_pulling: float
    """Seconds between syncs while any tag is unfinished (plus up to `resync_jitter_pulling`)."""
    resync_jitter_pulling: float
    resync_idle: float
    """Seconds between syncs when every tag is finished (plus up to `resync_jitter_idle`)."""
    resync_jitter_idle: float
    min_free_disk_bytes: int
    """Refuse to start a pull while the image filesystem has less free space; 0 switches the guard off."""
    cri_call_timeout: float
    """Seconds allowed to CRI calls other than PullImage."""
    scheduler_address: str
    """The scheduler's gRPC target for `Credentials`; empty: pull anonymously."""
    credentials_token_file: str
    inventory_address: str
    """nodeimage_sync's gRPC target for `NodeInventory`; empty: do not report."""
    inventory_token_file: str
    inventory_interval: float
    """Seconds between full inventory snapshots."""
    progress_interval: float
    """Seconds between byte-progress readings from containerd's content store; 0 switches progress off."""
    auth: bool = True
    """Authenticate (TokenReview) and authorize (SubjectAccessReview) calls to the Puller API."""
    api_audience: str = "prepull.io/puller"
    """Token audience callers of the Puller API present."""

    @classmethod
    def from_args(cls, argv: Sequence[str], environ: Mapping[str, str]) -> PullerSettings:
        """Parse flags (and NODE_NAME / KUBECONFIG from `environ`).

        Raises:
            shared_settings.SettingsError: a flag is missing or invalid; the message names it.
        """
        flags = parser().parse_flags(argv, environ)
        if not flags.node_name:
            raise shared_settings.SettingsError("prepull-puller: --node-name (or NODE_NAME) is required")
        if flags.workers < 1:
            raise shared_settings.SettingsError("prepull-puller: --workers must be at least 1")
        return cls(
            common=shared_settings.CommonSettings.from_flags(flags),
            node_name=flags.node_name,
            cri_socket=flags.cri_socket,
            workers=flags.workers,
            backoff_initial=flags.backoff_initial.total_seconds(),
            backoff_max=flags.backoff_max.total_seconds(),
            status_write_qps=flags.status_write_qps,
            status_write_burst=flags.status_write_burst,
            status_write_coalesce=flags.status_write_coalesce.total_seconds(),
            resync_pulling=flags.resync_pulling.total_seconds(),
            resync_jitter_pulling=flags.resync_jitter_pulling.total_seconds(),
            resync_idle=flags.resync_idle.total_seconds(),
            resync_jitter_idle=flags.resync_jitter_idle.total_seconds(),
            min_free_disk_bytes=flags.min_free_disk,
            cri_call_timeout=flags.cri_call_timeout.total_seconds(),
            scheduler_address=flags.scheduler_address,
            credentials_token_file=flags.credentials_token_file,
            inventory_address=flags.inventory_address,
            inventory_token_file=flags.inventory_token_file,
            inventory_interval=flags.inventory_interval.total_seconds(),
            progress_interval=flags.progress_interval.total_seconds(),
            auth=flags.auth,
            api_audience=flags.api_audience,
        )


def parser() -> shared_settings.FlagParser:
    """The puller's flag parser (common flags plus its own); `--help` documents each with its default."""
    flags = shared_settings.service_parser(
        "prepull-puller", "Pulls the images of this node's NodeImage through the CRI runtime.", PULLER_DEFAULTS
    )
    duration = shared_settings.duration
    flags.add_env_argument("--node-name", env="NODE_NAME", default="", help="this node's name (required)")
    flags.add_argument("--cri-socket", default=DEFAULT_CRI_SOCKET, help="CRI runtime endpoint (unix socket)")
    flags.add_argument("--workers", type=int, default=4, help="pulls in flight at once on this node")
    flags.add_argument("--backoff-initial", type=duration, default="1s", help="sleep after a failed pull attempt")
    flags.add_argument("--backoff-max", type=duration, default="30s", help="longest sleep between pull attempts")
    flags.add_argument("--status-write-qps", type=float, default=0.5, help="sustained NodeImage status writes/s")
    flags.add_argument("--status-write-burst", type=int, default=5, help="status writes allowed back to back")
    flags.add_argument(
        "--status-write-coalesce", type=duration, default="100ms", help="time to gather changes into one write"
    )
    flags.add_argument("--resync-pulling", type=duration, default="3s", help="sync period while pulls are unfinished")
    flags.add_argument("--resync-jitter-pulling", type=duration, default="2s", help="random extra on --resync-pulling")
    flags.add_argument("--resync-idle", type=duration, default="20m", help="sync period when all pulls are finished")
    flags.add_argument("--resync-jitter-idle", type=duration, default="10m", help="random extra on --resync-idle")
    flags.add_argument(
        "--min-free-disk",
        type=parse_bytes,
        default="1Gi",
        help="refuse to start a pull while the image filesystem has less free space (0: no guard)",
    )
    flags.add_argument("--cri-call-timeout", type=duration, default="30s", help="timeout of CRI calls but PullImage")
    flags.add_argument(
        "--scheduler-address", default="", help="scheduler gRPC target for Credentials; empty: anonymous pulls"
    )
    flags.add_argument(
        "--credentials-token-file",
        default=DEFAULT_CREDENTIALS_TOKEN_FILE,
        help="projected ServiceAccount token for audience prepull.io/credentials",
    )
    flags.add_argument(
        "--inventory-address", default="", help="nodeimage_sync gRPC target for NodeInventory; empty: no reports"
    )
    flags.add_argument(
        "--inventory-token-file",
        default=DEFAULT_INVENTORY_TOKEN_FILE,
        help="projected ServiceAccount token for audience prepull.io/inventory",
    )
    flags.add_argument("--inventory-interval", type=duration, default="5m", help="period of full inventory reports")
    flags.add_argument(
        "--progress-interval", type=duration, default="1s", help="byte progress reading period (0: phases only)"
    )
    flags.add_argument(
        "--auth", action=argparse.BooleanOptionalAction, default=True, help="authenticate and authorize Puller calls"
    )
    flags.add_argument("--api-audience", default="prepull.io/puller", help="token audience of the Puller API")
    return flags
