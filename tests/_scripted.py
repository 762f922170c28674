"""A scripted HTTP server on loopback: it records every request and answers from a script.

Tests use it where they need exact control of each answer (a 503 then a 200, a dropped connection)
and an exact count of what reached the wire. It is a real server in a thread, spoken to over TCP.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from attrs import define, field

LISTEN_KEY = "pqia91ma19a5s61cv6a81va65sdf19v8a65a1a5s61cv6a81va65sdf19v8a65a1"


@define
class Reply:
    """One scripted answer. `drop` closes the connection without answering.

    `reason` replaces the reason phrase; `length` the Content-Length (a larger one than the body
    sends a short body, then hangs up); `stall` waits between the headers and the body; `trickle`
    sends the body a byte at a time, this many seconds apart.
    """

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(factory=dict)
    delay: float = 0.0
    drop: bool = False
    raw: bytes | None = None
    content_type: str = "application/json"
    reason: str | None = None
    length: int | None = None
    stall: float = 0.0
    trickle: float = 0.0


@define
class Seen:
    """One request as it reached the server."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    at: float
    raw_query: str = ""
    """The query string as sent (percent-encoded, in order): what a SIGNED request signs."""

    @property
    def form(self) -> dict[str, list[str]]:
        return parse_qs(self.body.decode())


def default_reply(method: str) -> Reply:
    if method == "POST":
        return Reply(body={"listenKey": LISTEN_KEY})
    return Reply(body={})


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client hanging up is expected here
            super().handle_error(request, client_address)


class ScriptedServer:
    def __init__(self) -> None:
        self.requests: list[Seen] = []
        self._script: deque[Reply] = deque()
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else each answer's body waits 40 ms for a delayed ACK

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                seen = Seen(
                    method=self.command,
                    path=parts.path,
                    query=parse_qs(parts.query),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                    at=time.monotonic(),
                    raw_query=parts.query,
                )
                with outer._lock:
                    outer.requests.append(seen)
                    reply = outer._script.popleft() if outer._script else default_reply(self.command)
                if reply.delay:
                    time.sleep(reply.delay)
                if reply.drop:
                    self.close_connection = True
                    return
                if reply.raw is not None:
                    payload = reply.raw
                else:
                    payload = json.dumps(reply.body if reply.body is not None else {}).encode()
                self.send_response(reply.status, reply.reason)
                self.send_header("Content-Type", reply.content_type)
                self.send_header(
                    "Content-Length", str(len(payload) if reply.length is None else reply.length)
                )
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                try:
                    self._send_body(reply, payload)
                except OSError:  # the client gave up: what a trickle or a stall is for
                    self.close_connection = True
                if reply.length is not None and reply.length > len(payload):
                    self.close_connection = True

            def _send_body(self, reply: Reply, payload: bytes) -> None:
                if reply.stall:
                    self.wfile.flush()
                    time.sleep(reply.stall)
                if not reply.trickle:
                    self.wfile.write(payload)
                    return
                for byte in payload:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(reply.trickle)

            do_GET = do_POST = do_PUT = do_DELETE = _handle

        self._httpd = _Server(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.01,), daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def script(self, *replies: Reply) -> None:
        """Answer the next requests with these replies, in order; then fall back to success."""
        with self._lock:
            self._script.extend(replies)

    def start(self) -> ScriptedServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()
