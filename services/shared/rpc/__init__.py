"""gRPC plumbing shared by the services: server factory, client channels, status mapping, request decoding.

Synchronous gRPC (`grpc.server` on a thread pool), like the rest of the services. Import modules, not names:
`from services.shared.rpc import server` → `server.create_server(...)`.
"""

__all__ = ["channels", "decoding", "handlers", "health", "server", "status"]
