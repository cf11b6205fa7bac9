"""`prepull-puller`: the node agent's entry point (flags → logging → adapters → app → serve until SIGTERM)."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence

from services.puller import app, credentials_client, cri, settings, tokenfile
from services.shared import logging as shared_logging
from services.shared import observability
from services.shared import settings as shared_settings
from services.shared.kube import client, kubeapi
from services.shared.rpc import server

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
    api = kubeapi.KubeApi(
        client.from_kubeconfig(config.common.kubeconfig, settings=client.ClientSettings(user_agent="prepull-puller"))
    )
    images = cri.CriImageService(config.cri_socket, call_timeout=config.cri_call_timeout)
    credentials: credentials_client.CredentialsSource = credentials_client.AnonymousCredentials()
    if config.scheduler_address:
        credentials = credentials_client.CredentialsClient(
            config.scheduler_address, tokenfile.TokenFile(config.credentials_token_file)
        )
    puller = app.PullerApp(config, api=api, images=images, credentials=credentials)
    grpc_server, port = server.create_server(config.common.grpc_address, [])
    http = observability.ObservabilityServer(
        metrics_address=config.common.metrics_address,
        health_address=config.common.health_address,
        readiness=puller.ready,
    )
    http.start()
    puller.start()
    grpc_server.start()
    log.info("serving gRPC on port %d", port)
    try:
        server.serve_until_signal(grpc_server, grace=SHUTDOWN_GRACE_SECONDS)
    finally:
        puller.stop()
        http.stop()
        images.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
