"""`prepull-puller`: the node agent's entry point (flags → logging, tracing → adapters → app → serve until SIGTERM)."""

# ruff: noqa: E402 -- the imports after `lightimport.install()` must run after it: see the call
from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence

from services.shared.kube import lightimport

lightimport.install()  # first: the imports below then load only what this program uses of `kubernetes`

from services.puller import app, credentials_client, cri, grpcserver, inventory, progress, settings
from services.shared import logging as shared_logging
from services.shared import observability
from services.shared import settings as shared_settings
from services.shared.auth import token_source
from services.shared.kube import client, kubeapi
from services.shared.rpc import server
from services.shared.telemetry import setup as telemetry_setup

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_SECONDS = 10.0
"""Calls in flight get this long at SIGTERM; the DaemonSet's terminationGracePeriodSeconds must be longer."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the puller until SIGTERM or SIGINT; returns the exit status."""
    try:
        config = settings.PullerSettings.from_args(sys.argv[1:] if argv is None else argv, os.environ)
    except shared_settings.SettingsError as error:
        print(error, file=sys.stderr)
        return 2
    shared_logging.configure(config.common.log_level)
    tracing = telemetry_setup.configure_tracing(os.environ, default_service_name="prepull-puller")
    try:
        return _run(config)
    finally:
        tracing.shutdown()


def _run(config: settings.PullerSettings) -> int:
    """Build the adapters and the app, and serve until SIGTERM or SIGINT."""
    api_client = client.from_kubeconfig(
        config.common.kubeconfig, settings=client.ClientSettings(user_agent="prepull-puller")
    )
    api = kubeapi.KubeApi(api_client)
    images = cri.CriImageService(config.cri_socket, call_timeout=config.cri_call_timeout)
    credentials: credentials_client.CredentialsSource = credentials_client.AnonymousCredentials()
    if config.scheduler_address:
        credentials = credentials_client.CredentialsClient(
            config.scheduler_address, token_source.FileTokenSource(config.credentials_token_file)
        )
    reporter = None
    if config.inventory_address:
        reporter = inventory.InventoryReporter.connect(
            images,
            config.inventory_address,
            config.inventory_token_file,
            config.node_name,
            interval=config.inventory_interval,
        )
    puller = app.PullerApp(
        config,
        api=api,
        images=images,
        credentials=credentials,
        progress=progress.for_runtime(images, interval=config.progress_interval),
        on_pulled=reporter.notify if reporter is not None else lambda: None,
    )
    grpc_server, port, health = grpcserver.build(config, puller.local, api_client)
    http = observability.ObservabilityServer(
        metrics_address=config.common.metrics_address,
        health_address=config.common.health_address,
        readiness=puller.ready,
        registry=puller.metrics.registry,
    )
    http.start()
    puller.start()
    if reporter is not None:
        reporter.start()
    grpc_server.start()
    log.info("serving gRPC on port %d", port)
    try:
        server.serve_until_signal(grpc_server, grace=SHUTDOWN_GRACE_SECONDS, health=health)
    finally:
        puller.stop()
        if reporter is not None:
            reporter.stop()
        http.stop()
        images.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
