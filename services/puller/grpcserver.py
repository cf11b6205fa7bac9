"""The puller's gRPC server: the `Puller` service behind tracing, authentication and error mapping."""

from __future__ import annotations

import grpc

from services.puller import localpull, servicer
from services.puller.settings import PullerSettings
from services.shared.auth import interceptor as auth_interceptor
from services.shared.auth import subjectaccess, tokenreview
from services.shared.gen.prepull.v1 import puller_pb2_grpc
from services.shared.kube import client
from services.shared.rpc import health, status
from services.shared.rpc import server as rpc_server
from services.shared.telemetry import instrumentation

__all__ = ["build"]


def build(
    settings: PullerSettings, pulls: localpull.LocalPulls, api_client: client.ApiClient | None
) -> tuple[grpc.Server, int, health.Health]:
    """A bound, not yet started server; `api_client` reviews tokens and access (required when `settings.auth`)."""
    interceptors: list[grpc.ServerInterceptor] = [instrumentation.server_interceptor()]
    if settings.auth:
        if api_client is None:
            raise ValueError("authentication needs an API client for TokenReview and SubjectAccessReview")
        interceptors.append(
            auth_interceptor.AuthInterceptor(
                servicer.policies(settings.node_name, settings.api_audience),
                authenticator=tokenreview.TokenReviewAuthenticator(api_client),
                reviewer=subjectaccess.SubjectAccessReviewer(api_client),
            )
        )
    interceptors.append(status.StatusInterceptor(servicer.STATUS_TABLE))
    server_health = health.Health()
    server, port = rpc_server.create_server(
        settings.common.grpc_address,
        [(puller_pb2_grpc.add_PullerServicer_to_server, servicer.PullerServicer(pulls))],
        health=server_health,
        interceptors=interceptors,
    )
    return server, port, server_health
