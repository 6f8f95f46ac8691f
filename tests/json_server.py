"""The HTTP plumbing every fake server of the suite shares: a JSON request handler and a threaded server on 127.0.0.1.

Why one place: a fake's answers are what differs; reading a body, replying JSON, running on a free port and stopping
are not. It also keeps one rule right everywhere: a client killed halfway through sending its request (a Ray worker
whose node died, a driver killed with SIGKILL) never made that request, so `read_json` returns None for it and the
fake neither counts nor answers it.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class JSONHandler(BaseHTTPRequestHandler):
    """A keep-alive handler that reads and writes JSON and logs nothing."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def send_json(self, code: int, payload: Any) -> None:
        """`payload` as JSON (a `str` is sent as it is, for replies that are not JSON)."""
        data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
        try:
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up waiting: nobody to answer
            self.close_connection = True

    def read_json(self) -> dict[str, Any] | None:
        """The request's JSON body (`{}` when it has none); None when the connection ended before the whole body
        arrived, which is no request at all (the connection is closed without an answer)."""
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if len(raw) < length:
            self.close_connection = True
            return None
        return json.loads(raw or b"{}")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # saturation tests open hundreds of connections at once


class LoopbackServer:
    """Serves `handler` on a free port of 127.0.0.1 from a daemon thread until `close()`."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]):
        self.httpd = _Server(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
