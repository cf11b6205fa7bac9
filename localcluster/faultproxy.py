"""A fault-injecting HTTP proxy in front of one registry, so tests can make pulls fail on command.

containerd is pointed at the proxy's loopback address as if it were the registry (the proxy passes the `Host`
header through, so upload and redirect URLs the registry builds still name the proxy). A test switches the
proxy between behaviours while pulls run:

- `pass_through()`: forward every request unchanged (the initial mode);
- `fail_with(503)`: answer every request with that HTTP status, without reaching the registry;
- `delay(2.0)`: wait that many seconds before forwarding each request;
- `reset_connections()`: accept, then close every connection with a TCP reset, sending nothing;
- `refuse_connections()`: stop listening, so connecting fails (ECONNREFUSED);
- `limit_rate(bytes_per_second)`: forward, but pace response bodies (slow downloads, for progress tests).

The mode is checked at the start of each request, so a keep-alive connection feels a change at its next
request. `requests_seen` counts requests, so a test can prove traffic went through the proxy.
"""

from __future__ import annotations

import http.client
import http.server
import socket
import struct
import threading
import time
from dataclasses import dataclass

from localcluster.process import free_port

HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"}
)
COPY_CHUNK = 64 * 1024


@dataclass(frozen=True)
class Fault:
    """What the proxy does to the next request; the default passes everything through."""

    status: int | None = None
    delay_seconds: float = 0.0
    reset: bool = False
    refuse: bool = False
    bytes_per_second: int | None = None


class FaultProxy:
    """A threaded HTTP/1.1 proxy on `127.0.0.1:<port>` forwarding to `upstream` (`host:port`).

    Args:
        upstream: `host:port` of the registry behind the proxy.
        port: Port to listen on; a free one when omitted.
    """

    def __init__(self, upstream: str, *, port: int | None = None) -> None:
        self.upstream = upstream
        self.port = port or free_port()
        self._fault = Fault()
        self._lock = threading.Lock()
        self._requests_seen = 0
        self._running = False
        self._server: _ProxyServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> str:
        """`host:port` to use in image references instead of the registry's."""
        return f"127.0.0.1:{self.port}"

    @property
    def requests_seen(self) -> int:
        """How many requests (or connections, while resetting) reached the proxy."""
        return self._requests_seen

    @property
    def fault(self) -> Fault:
        """The behaviour in force."""
        return self._fault

    def start(self) -> None:
        """Listen and serve in a daemon thread."""
        self._running = True
        self._listen()

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        self._running = False
        self._close()

    def pass_through(self) -> None:
        """Back to normal: forward every request unchanged."""
        self._set(Fault())

    def fail_with(self, status: int) -> None:
        """Answer every request with HTTP `status` (e.g. 500, 503) and never reach the registry."""
        self._set(Fault(status=status))

    def delay(self, seconds: float) -> None:
        """Forward every request after waiting `seconds`."""
        self._set(Fault(delay_seconds=seconds))

    def reset_connections(self) -> None:
        """Close every connection with a TCP reset before answering anything."""
        self._set(Fault(reset=True))

    def refuse_connections(self) -> None:
        """Stop listening, so new connections are refused; open ones are reset at their next request.

        Any other mode listens again on the same port.
        """
        self._set(Fault(refuse=True))

    def limit_rate(self, bytes_per_second: int) -> None:
        """Forward, pacing each response body to about `bytes_per_second`."""
        self._set(Fault(bytes_per_second=bytes_per_second))

    def _set(self, fault: Fault) -> None:
        with self._lock:
            self._fault = fault
        if not self._running:
            return
        if fault.refuse:
            self._close()
        else:
            self._listen()

    def _listen(self) -> None:
        """Bind the proxy's port (again) and serve it from a daemon thread."""
        if self._server is not None:
            return
        self._server = _ProxyServer(("127.0.0.1", self.port), self)
        self._thread = threading.Thread(target=self._server.serve_forever, name=f"faultproxy-{self.port}", daemon=True)
        self._thread.start()

    def _close(self) -> None:
        """Stop accepting and release the port; connection threads already running finish on their own."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = self._thread = None

    def record_request(self) -> Fault:
        """Count one request (called by the request handler) and return the fault in force for it."""
        with self._lock:
            self._requests_seen += 1
            return self._fault


class _ProxyServer(http.server.ThreadingHTTPServer):
    """One thread per connection; the threads die with the process (pulls may hang on a stopped proxy)."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], proxy: FaultProxy) -> None:
        self.proxy = proxy
        super().__init__(address, _ProxyHandler)


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    """Applies the proxy's fault to each request, or forwards it to the upstream registry."""

    protocol_version = "HTTP/1.1"
    server: _ProxyServer

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the registry logs requests already."""

    def _handle(self) -> None:
        """Every request: count it, then reset, delay, fail or forward it as the proxy's fault says."""
        fault = self.server.proxy.record_request()
        if fault.reset or fault.refuse:
            self._reset()
            return
        if fault.delay_seconds:
            time.sleep(fault.delay_seconds)
        if fault.status is not None:
            self._answer_error(fault.status)
            return
        self._forward(fault.bytes_per_second)

    # http.server dispatches to `do_<METHOD>`; every method gets the same treatment.
    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _handle  # noqa: N815

    def _reset(self) -> None:
        """SO_LINGER 0 then close: the client sees 'connection reset by peer'."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()

    def _answer_error(self, status: int) -> None:
        """A registry-style JSON error, so clients report the status as a registry would."""
        self._discard_request_body()
        body = b'{"errors":[{"code":"UNAVAILABLE","message":"injected by prepull fault proxy"}]}'
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _forward(self, bytes_per_second: int | None) -> None:
        """Send the request upstream with its original `Host`, then stream the answer back."""
        host, port = self.server.proxy.upstream.rsplit(":", 1)
        upstream = http.client.HTTPConnection(host, int(port), timeout=300)
        try:
            try:
                response = self._send_upstream(upstream)
            except OSError:
                self.close_connection = True
                self.send_error(502, "upstream registry unreachable")
                return
            try:
                self._relay(response, bytes_per_second)
            except OSError:
                self.close_connection = True
        finally:
            upstream.close()

    def _send_upstream(self, upstream: http.client.HTTPConnection) -> http.client.HTTPResponse:
        """Replay this request's method, path, headers (Host included) and body on `upstream`."""
        upstream.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
        for name, value in self.headers.items():
            if name.lower() not in HOP_BY_HOP:
                upstream.putheader(name, value)
        upstream.endheaders(self._request_body())
        return upstream.getresponse()

    def _relay(self, response: http.client.HTTPResponse, bytes_per_second: int | None) -> None:
        """Copy status, headers and body; without a Content-Length the body ends with the connection."""
        self.send_response_only(response.status, response.reason)
        for name, value in response.getheaders():
            if name.lower() not in HOP_BY_HOP:
                self.send_header(name, value)
        if response.getheader("Content-Length") is None and self.command != "HEAD":
            self.close_connection = True
            self.send_header("Connection", "close")
        self.end_headers()
        self._copy_body(response, bytes_per_second)

    def _copy_body(self, response: http.client.HTTPResponse, bytes_per_second: int | None) -> None:
        """Stream the body in chunks, sleeping between chunks when a rate limit is set."""
        started, sent = time.monotonic(), 0
        while chunk := response.read(COPY_CHUNK):
            self.wfile.write(chunk)
            sent += len(chunk)
            if bytes_per_second:
                ahead = sent / bytes_per_second - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)

    def _request_body(self) -> bytes | None:
        """The request body (registry clients send Content-Length bodies; pulls send none)."""
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else None

    def _discard_request_body(self) -> None:
        """Read an unused body so the next request on a keep-alive connection parses correctly."""
        self._request_body()
