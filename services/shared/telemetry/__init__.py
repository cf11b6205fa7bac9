"""Tracing for the services: code uses the OpenTelemetry API; only `setup` touches the SDK.

`setup.configure_tracing(os.environ, ...)` at the entry point wires the SDK from the standard `OTEL_*`
variables (or nothing at all when none are set); `attributes` names span attributes; `propagation` carries
trace context through strings (annotations, NodeImage fields) and gRPC metadata; `instrumentation` gives the
gRPC client and server interceptors that make RPC spans.
"""

__all__ = ["attributes", "instrumentation", "propagation", "setup"]
