"""`prepull trace --jaeger-url`: the HTTP side, against a loopback server that answers like Jaeger's query API.

The server is a stand-in that returns the recorded-shape document of `tests.unit.cli.jaeger_documents`: this
checks the request we make (path, trace id), "not found" and error answers, and the whole command; it does
not prove compatibility with a real Jaeger, which no test here runs.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from services.cli.__main__ import main
from tests.unit.cli.jaeger_documents import TRACE_ID, a_jaeger_trace

pytestmark = pytest.mark.integration

BROKEN_TRACE_ID = "ffffffffffffffffffffffffffffffff"


class JaegerQuery(BaseHTTPRequestHandler):
    """Knows one trace; answers 404 for others and 500 for `BROKEN_TRACE_ID`."""

    requested: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.requested.append(self.path)
        if self.path == f"/api/traces/{TRACE_ID}":
            self._answer(200, a_jaeger_trace())
        elif self.path == f"/api/traces/{BROKEN_TRACE_ID}":
            self._answer(500, {"errors": [{"code": 500, "msg": "storage down"}]})
        else:
            self._answer(404, {"data": None, "errors": [{"code": 404, "msg": "trace not found"}]})

    def _answer(self, status: int, document: object) -> None:
        body = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: pytest shows the test's own output."""


@pytest.fixture
def jaeger_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), JaegerQuery)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    JaegerQuery.requested = []
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()
    thread.join(10)


def test_a_trace_is_drawn_from_jaeger(jaeger_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["trace", "--trace-id", TRACE_ID.upper(), "--jaeger-url", jaeger_url, "--width", "10"])

    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert JaegerQuery.requested == [f"/api/traces/{TRACE_ID}"]
    assert out[0].startswith(f"trace {TRACE_ID}  3 spans  2 services  1 node")
    assert out[4] == "[node-a]"


def test_an_unknown_trace_is_reported_as_not_there_yet(jaeger_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trace", "--trace-id", "4bf92f3577b34da6a3ce929d0e0e4736", "--jaeger-url", jaeger_url]) == 1
    assert "no spans of trace 4bf92f3577b34da6a3ce929d0e0e4736" in capsys.readouterr().err


def test_a_failing_jaeger_is_reported(jaeger_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trace", "--trace-id", BROKEN_TRACE_ID, "--jaeger-url", jaeger_url]) == 1
    assert "cannot read trace" in capsys.readouterr().err
