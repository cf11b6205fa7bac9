"""gRPC plumbing shared by the services: server factory, client channels, error-to-status mapping.

Synchronous gRPC (`grpc.server` on a thread pool), like the rest of the services. Import modules, not names:
`from services.shared.rpc import server` → `server.create_server(...)`.
"""

__all__ = ["channels", "handlers", "health", "server", "status"]
