"""Simulator: the Exchange behind a real HTTP server on loopback, with fault injection.

The server is the standard library's ThreadingHTTPServer: no extra dependency for users who only
want to point their tests at a simulator, HTTP/1.1 keep-alive, and direct access to the socket,
which a dropped-connection fault needs. A thread serves each connection.

Besides Binance's endpoint it answers a few control requests under `/_simulator/` (loopback only),
so that another process (the demo, a user's test) can inject faults into a running simulator.
"""

from __future__ import annotations

import json
import logging
import random
import socket
import threading
import time
from collections import deque
from collections.abc import Collection, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

from binance_userstream._clock import Clock
from binance_userstream._secrets import scrub
from binance_userstream.simulator._exchange import RETIRED, WEIGHT_LIMIT, Answer, Exchange, error
from binance_userstream.simulator._faults import Fault

log = logging.getLogger("binance_userstream.simulator")
CONTROL = "/_simulator/"
REQUESTS_KEPT = 10_000


class Simulator:
    """A local Binance user-data-stream endpoint: `with Simulator() as sim: ... sim.url ...`.

    `port=0` picks a free port. `clock` drives key validity and weight windows (a VirtualClock in
    tests, an AcceleratedClock in the demo). `inject` queues faults that replace the next answers.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        clock: Clock | None = None,
        api_keys: Collection[str] | Mapping[str, str] | None = None,
        retired: bool = False,
        weight_limit: int = WEIGHT_LIMIT,
        violations_before_ban: int = 3,
    ) -> None:
        self.exchange = Exchange(
            clock,
            api_keys=api_keys,
            retired=retired,
            weight_limit=weight_limit,
            violations_before_ban=violations_before_ban,
        )
        self._faults: deque[Fault] = deque()
        self._lock = threading.Lock()
        #: The latest requests that reached the server, as (method, path), oldest first; bounded,
        #: so that a simulator left running for days does not grow. `request_count` counts all.
        self.requests: deque[tuple[str, str]] = deque(maxlen=REQUESTS_KEPT)
        self.request_count = 0
        #: How many times each fault was served.
        self.faults_served: dict[Fault, int] = {}
        self._chaos: tuple[random.Random, float, tuple[Fault, ...]] | None = None
        server_class = _IPv6Server if ":" in host else ThreadingHTTPServer
        self._httpd = server_class((host, port), _handler(self))
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        name = host.decode() if isinstance(host, bytes) else host
        return f"http://[{name}]:{port}" if ":" in name else f"http://{name}:{port}"

    def inject(self, *faults: Fault) -> None:
        """Answer the next len(faults) requests with these faults, in order."""
        with self._lock:
            self._faults.extend(faults)

    def chaos(self, rate: float, faults: Sequence[Fault], seed: int | None = None) -> None:
        """From now on, replace each answer with one of `faults`, at random, with probability `rate`.

        Seeded, so a failing soak can be replayed. Queued faults (`inject`) still come first.
        """
        if not 0 <= rate <= 1 or not faults:
            raise ValueError("chaos needs a rate in [0, 1] and at least one fault")
        with self._lock:
            self._chaos = (random.Random(seed), rate, tuple(faults))

    def pending_faults(self) -> int:
        with self._lock:
            return len(self._faults)

    def start(self) -> Self:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.05,), name="binance-userstream-simulator", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._httpd.server_close()

    def serve_forever(self) -> None:
        """Serve in this thread until interrupted (the CLI's `simulator` command)."""
        try:
            self._httpd.serve_forever(0.2)
        finally:
            self._httpd.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _next_fault(self) -> Fault | None:
        with self._lock:
            fault = self._faults.popleft() if self._faults else None
            if fault is None and self._chaos is not None:
                rng, rate, faults = self._chaos
                if rng.random() < rate:
                    fault = rng.choice(faults)
            if fault is not None:
                self.faults_served[fault] = self.faults_served.get(fault, 0) + 1
            return fault

    def _control(self, method: str, path: str, body: bytes) -> Answer:
        """The `/_simulator/` requests: inject faults, lose keys, look at the state."""
        action = path[len(CONTROL) :]
        if method == "POST" and action == "faults":
            try:
                faults = [Fault.from_json(item) for item in json.loads(body or b"[]")]
            except (ValueError, TypeError, AttributeError) as exc:
                return error(400, -1100, f"bad faults: {exc}")
            self.inject(*faults)
            return Answer(200, json.dumps({"queued": self.pending_faults()}).encode())
        if method == "POST" and action == "forget-keys":
            return Answer(200, json.dumps({"forgotten": self.exchange.forget_keys()}).encode())
        if method == "GET" and action == "state":
            state = {
                "live_keys": self.exchange.live_keys(),
                "pending_faults": self.pending_faults(),
                "requests": self.request_count,
                "retired": self.exchange.retired,
            }
            return Answer(200, json.dumps(state).encode())
        return error(404, -1000, f"unknown control request {method} {path}")


class _IPv6Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6


def _answer_fault(fault: Fault) -> Answer:
    if fault.status == 410:
        return RETIRED
    headers: tuple[tuple[str, str], ...] = ()
    if fault.retry_after is not None:
        headers = (("Retry-After", f"{fault.retry_after:g}"),)
    if fault.status == 429:
        return error(429, -1003, "Too many requests; current limit is being exceeded.", headers)
    if fault.status == 418:
        return error(418, -1003, "Way too much request weight used; IP banned.", headers)
    return error(fault.status, -1001, "Internal error; unable to process your request. Please try again.")


def _handler(sim: Simulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes; with Nagle's algorithm the second waits for the
        # client's delayed ACK, 40 ms a request. TCP_NODELAY sends both at once.
        disable_nagle_algorithm = True
        server_version = "binance-userstream-simulator"
        sys_version = ""

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s %s", self.address_string(), scrub(format % args))

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            parts = urlsplit(self.path)
            with sim._lock:
                sim.requests.append((self.command, parts.path))
                sim.request_count += 1
            if parts.path.startswith(CONTROL):
                self._send(sim._control(self.command, parts.path, body))
                return
            fault = sim._next_fault()
            if fault is not None and fault.kind == "drop":
                self.close_connection = True  # hang up without a word
                return
            if fault is not None and fault.kind == "delay":
                time.sleep(fault.delay)
                fault = None
            if fault is not None and fault.kind == "lose_keys":
                sim.exchange.forget_keys()
                fault = None
            if fault is not None:
                self._send(_answer_fault(fault))
                return
            form: dict[str, list[str]] = {}
            if "application/x-www-form-urlencoded" in (self.headers.get("Content-Type") or ""):
                form = parse_qs(body.decode("latin-1"), keep_blank_values=True)
            answer = sim.exchange.handle(
                self.command,
                parts.path,
                parse_qs(parts.query, keep_blank_values=True),
                form,
                self.headers.get("X-MBX-APIKEY"),
                self.client_address[0],
            )
            self._send(answer)

        def _send(self, answer: Answer) -> None:
            self.send_response(answer.status)
            self.send_header("Content-Type", answer.content_type)
            self.send_header("Content-Length", str(len(answer.body)))
            for name, value in answer.headers:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(answer.body)

        def __getattr__(self, name: str) -> Any:
            # Every method reaches _serve, which answers the undeclared ones with 405 and Allow.
            if name.startswith("do_"):
                return self._serve
            raise AttributeError(name)

    return Handler
