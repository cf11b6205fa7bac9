"""`prepull-scheduler`: set up logging and tracing (`OTEL_*`), run one scheduler replica until SIGTERM/SIGINT."""

# ruff: noqa: E402 -- the imports after `lightimport.install()` must run after it: see the call
from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence

from services.shared.kube import lightimport

lightimport.install()  # first: the imports below then load only what this program uses of `kubernetes`

from services.scheduler import settings as scheduler_settings
from services.scheduler.app import SchedulerApp
from services.shared import logging as shared_logging
from services.shared import settings as shared_settings
from services.shared.kube import client
from services.shared.rpc import server as rpc_server
from services.shared.telemetry import setup as telemetry_setup

log = logging.getLogger("services.scheduler")


def main(argv: Sequence[str] | None = None) -> int:
    """Parse flags, start the replica, and block until asked to stop."""
    try:
        settings = scheduler_settings.parse(sys.argv[1:] if argv is None else argv)
    except shared_settings.SettingsError as error:
        print(error, file=sys.stderr)
        return 2
    shared_logging.configure(settings.log_level)
    tracing = telemetry_setup.configure_tracing(os.environ, default_service_name="prepull-scheduler")
    try:
        api_client = client.from_kubeconfig(
            settings.kubeconfig, settings=client.ClientSettings(user_agent="prepull-scheduler")
        )
        app = SchedulerApp(settings, api_client)
        app.start()
        try:
            rpc_server.serve_until_signal(app.grpc_server, grace=5.0, health=app.health)
        finally:
            app.stop()
    finally:
        tracing.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
