"""`binance-userstream account`, run as a real process against the simulator's REST and streams.

The snapshot is what the simulator's ledger holds (its orders placed and filled by the test); with
`--follow` each event's change is a line, and a cut while traffic goes on ends in a Reconciled
that names the trades the stream missed. Signals, exit codes and secrets as for `listen`.
"""

from __future__ import annotations

import json
import os
import re
import selectors
import signal
import subprocess
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from binance_userstream import AccountState, Balance, Change, Order
from binance_userstream._account_lines import change_line, state_json, state_table
from binance_userstream.simulator import TEST_API_KEY, TEST_API_SECRET, Simulator
from tests._scripted import ScriptedServer
from tests.test_cli import CLI
from tests.test_cli_signals import HANG, PROMPT, eventually, stop

#: Long enough for the interpreter to start and the stream to connect on a loaded machine.
PATIENCE = 15.0


@pytest.fixture
def live() -> Iterator[Simulator]:
    """A simulator on real time: the command runs in another process, on its own clock."""
    with Simulator() as sim:
        yield sim


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "secret.txt"
    path.write_text(TEST_API_SECRET + "\n")
    return path


def env() -> dict[str, str]:
    """The test account's API key; no signer from the environment (the tests give a file)."""
    names = ("BINANCE_API_KEY", "BINANCE_API_SECRET", "BINANCE_PRIVATE_KEY_FILE")
    base = {name: value for name, value in os.environ.items() if name not in names}
    return {**base, "BINANCE_API_KEY": TEST_API_KEY}


def account(sim: Simulator, secret: Path | None, *extra: str, market: str = "usdm") -> list[str]:
    ws = sim.url.replace("http://", "ws://")
    signing = ["--api-secret-file", str(secret)] if secret is not None else []
    return [*CLI, "account", "--market", market, "--base-url", sim.url, "--stream-url", ws, *signing, *extra]


def run(args: list[str]) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(args, env=env(), capture_output=True, text=True, timeout=60, check=False)
    assert "Traceback" not in proc.stderr
    assert_no_secret(proc.stdout + proc.stderr)
    return proc


def assert_no_secret(text: str, *more: str) -> None:
    for secret in (TEST_API_KEY, TEST_API_SECRET, *more):
        assert secret not in text


def fixed(value: Decimal | None) -> str | None:
    """An amount as Binance writes it (the ledger keeps the digits it was given)."""
    return None if value is None else format(value, "f")


class Lines:
    """A running command's stdout, line by line, never waiting longer than PATIENCE for one."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        self.fd = proc.stdout.fileno()
        self.buffer = b""
        self.seen: list[str] = []

    def next(self) -> str:
        deadline = time.monotonic() + PATIENCE
        with selectors.DefaultSelector() as selector:
            selector.register(self.fd, selectors.EVENT_READ)
            while b"\n" not in self.buffer:
                remaining = deadline - time.monotonic()
                assert remaining > 0, f"no line; read {self.seen}"
                assert selector.select(remaining), f"no line; read {self.seen}"
                chunk = os.read(self.fd, 65536)
                assert chunk, f"closed; read {self.seen} {self.buffer!r}"
                self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        self.seen.append(line.decode())
        return self.seen[-1]

    def until(self, prefix: str) -> list[str]:
        """The lines up to and including the first that starts with `prefix`."""
        start = len(self.seen)
        while not self.next().startswith(prefix):
            pass
        return self.seen[start:]

    def snapshot(self) -> list[str]:
        """The readable snapshot's lines, up to the blank line that ends its last table."""
        lines = self.until("Open orders")
        while lines[-1]:
            lines.append(self.next())
        return lines

    def json_until(self, event: str) -> list[dict[str, Any]]:
        """The JSON lines up to and including the first whose "event" is `event`."""
        found = []
        while True:
            found.append(json.loads(self.next()))
            if found[-1]["event"] == event:
                return found


def follow(sim: Simulator, secret: Path, *extra: str) -> subprocess.Popen[bytes]:
    """`account --follow` running (killed if the test fails before it ends)."""
    return subprocess.Popen(
        account(sim, secret, "--follow", *extra), env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def place_and_fill(sim: Simulator) -> tuple[int, int]:
    """A partly filled BTCUSDT buy (a position, a balance moved) and an untouched ETHUSDT sell."""
    buy = sim.place_order("usdm", symbol="BTCUSDT", side="BUY", quantity="0.010", price="43000.10")
    sim.fill_order("usdm", buy, "0.004")
    sell = sim.place_order("usdm", symbol="ETHUSDT", side="SELL", quantity="1.500", price="3000.00")
    return buy, sell


# -- the snapshot --------------------------------------------------------------------------------


def test_the_snapshot_is_a_table_of_the_ledgers_balances_positions_and_open_orders(
    live: Simulator, secret_file: Path
) -> None:
    buy, sell = place_and_fill(live)
    proc = run(account(live, secret_file))
    assert proc.returncode == 0, proc.stderr
    ledger = live.ledger("usdm")
    rows = [line.split() for line in proc.stdout.splitlines()]
    [usdt] = ledger.balances.values()
    assert ["USDT", fixed(usdt.wallet), fixed(usdt.cross_wallet)] in rows
    assert ["BTCUSDT", "BOTH", "0.004", "43000.10"] in rows
    assert ["BTCUSDT", str(buy), f"sim-{buy}", "BUY", "LIMIT", "PARTIALLY_FILLED"] in [r[:6] for r in rows]
    assert ["ETHUSDT", str(sell), f"sim-{sell}", "SELL", "LIMIT", "NEW", "3000.00", "1.500", "0"] in [
        r[:9] for r in rows
    ]
    assert proc.stdout.startswith("ACCOUNT usdm as of 20")


def test_the_snapshot_with_json_is_one_document_with_amounts_as_strings_as_binance_sent_them(
    live: Simulator, secret_file: Path
) -> None:
    buy, sell = place_and_fill(live)
    proc = run(account(live, secret_file, "--json"))
    assert proc.returncode == 0, proc.stderr
    document = json.loads(proc.stdout)
    [usdt] = live.ledger("usdm").balances.values()
    assert document["event"] == "snapshot"
    assert document["stale"] is False
    assert document["balances"] == [
        {"asset": "USDT", "wallet": fixed(usdt.wallet), "cross_wallet": fixed(usdt.cross_wallet)}
    ]
    assert document["positions"] == [
        {"symbol": "BTCUSDT", "side": "BOTH", "amount": "0.004", "entry_price": "43000.10"}
    ]
    orders = {order["order_id"]: order for order in document["open_orders"]}
    assert set(orders) == {buy, sell}
    assert (orders[sell]["price"], orders[sell]["quantity"], orders[sell]["executed_quantity"]) == (
        "3000.00",
        "1.500",
        "0",
    )
    assert (orders[buy]["status"], orders[buy]["executed_quantity"]) == ("PARTIALLY_FILLED", "0.004")


def test_a_spot_snapshot_shows_free_and_locked_and_no_positions_section(
    live: Simulator, secret_file: Path
) -> None:
    live.place_order("spot", symbol="BTCUSDT", side="BUY", quantity="0.1", price="40000.00")
    proc = run(account(live, secret_file, market="spot"))
    assert proc.returncode == 0, proc.stderr
    rows = [line.split() for line in proc.stdout.splitlines()]
    usdt = live.ledger("spot").balances["USDT"]
    assert ["USDT", fixed(usdt.free), fixed(usdt.locked)] in rows
    assert ["ASSET", "FREE", "LOCKED"] in rows
    assert "Positions" not in proc.stdout


def test_symbol_takes_the_snapshot_of_that_pairs_isolated_margin_account(
    live: Simulator, secret_file: Path
) -> None:
    live.place_order("margin", symbol="BTCUSDT", side="BUY", quantity="0.01", price="40000", isolated=True)
    proc = run(account(live, secret_file, "--symbol", "BTCUSDT", "--json", market="margin"))
    assert proc.returncode == 0, proc.stderr
    document = json.loads(proc.stdout)
    ledger = live.ledger("margin", symbol="BTCUSDT")
    assert {b["asset"]: (b["free"], b["locked"]) for b in document["balances"]} == {
        asset: (fixed(b.free), fixed(b.locked)) for asset, b in ledger.balances.items() if not _zero(b)
    }
    # as margin's REST wrote it: eight decimals
    assert [(o["symbol"], o["side"], o["quantity"]) for o in document["open_orders"]] == [
        ("BTCUSDT", "BUY", "0.01000000")
    ]


def _zero(balance: Any) -> bool:
    return all(not amount for amount in (balance.free, balance.locked))


def test_without_a_signer_account_exits_2_before_anything_is_sent(live: Simulator) -> None:
    proc = run(account(live, None))
    assert proc.returncode == 2, proc.stderr
    assert "SIGNED" in proc.stderr
    assert "--api-secret-file or --private-key-file" in proc.stderr
    assert live.request_count == 0
    assert live.stream_connections("usdm") == 0


def test_a_wrong_secret_exits_with_the_auth_code_and_prints_no_account(
    live: Simulator, tmp_path: Path
) -> None:
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("W" * 64)
    proc = run(account(live, wrong, "--no-retry"))
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout == ""
    assert "W" * 64 not in proc.stderr


# -- following -----------------------------------------------------------------------------------


def test_follow_prints_the_snapshot_then_a_change_line_per_event(live: Simulator, secret_file: Path) -> None:
    buy, sell = place_and_fill(live)
    with follow(live, secret_file) as proc:
        lines = Lines(proc)
        head = lines.snapshot()
        live.fill_order("usdm", buy)
        filled = [lines.next() for _ in range(3)]  # the order, then its ACCOUNT_UPDATE's balance, position
        live.cancel_order("usdm", sell)
        canceled = lines.next()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=5) == 130
    assert head[0].startswith("ACCOUNT usdm as of 20")
    assert filled[0].startswith("ORDER 20")
    assert f"BTCUSDT {buy} no longer open" in filled[0]
    assert filled[1].startswith("BALANCE 20")
    assert " USDT changed: wallet=" in filled[1]
    assert filled[2].startswith("POSITION 20")
    assert "BTCUSDT BOTH changed: amount=0.010 (was 0.004)" in filled[2]
    assert f"ETHUSDT {sell} no longer open" in canceled


def test_follow_with_json_prints_one_object_per_line_for_each_change(
    live: Simulator, secret_file: Path
) -> None:
    buy = live.place_order("usdm", symbol="BTCUSDT", side="BUY", quantity="0.010", price="43000.10")
    with follow(live, secret_file, "--json") as proc:
        lines = Lines(proc)
        snapshot = json.loads(lines.next())
        live.fill_order("usdm", buy, "0.004")
        changes = [json.loads(lines.next()) for _ in range(3)]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 143
    assert snapshot["event"] == "snapshot"
    assert [(c["event"], c["kind"]) for c in changes] == [
        ("change", "order"),
        ("change", "balance"),
        ("change", "position"),
    ]
    order = changes[0]
    assert order["key"] == ["BTCUSDT", buy]
    assert (order["before"]["executed_quantity"], order["after"]["executed_quantity"]) == ("0", "0.004")
    assert order["after"]["status"] == "PARTIALLY_FILLED"


def test_a_cut_while_traffic_goes_on_ends_in_a_reconciled_with_the_missed_trades(
    live: Simulator, secret_file: Path
) -> None:
    with follow(live, secret_file, "--json") as proc:
        lines = Lines(proc)
        assert json.loads(lines.next())["event"] == "snapshot"
        live.cut_streams("usdm")
        live.traffic("usdm")  # no connection: the ledger moves, the events are lost
        seen = lines.json_until("reconciled")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 143
    gap, reconciled = seen[0], seen[-1]
    ledger = live.ledger("usdm")
    assert gap["event"] == "gap"
    assert reconciled["gap"]["reason"] == gap["reason"]
    streamed = {  # by a connection made again before the traffic ended (it rarely is)
        event["o"]["t"]
        for event in (json.loads(d.text) for d in live.deliveries if d.connections)
        if event["e"] == "ORDER_TRADE_UPDATE" and event["o"]["x"] == "TRADE"
    }
    assert [(t["symbol"], t["trade_id"]) for t in reconciled["recovered_trades"]] == [
        (t.symbol, t.trade_id) for t in ledger.trades if t.trade_id not in streamed
    ]
    assert reconciled["recovered_trades"]
    [position] = ledger.positions.values()
    changed = {tuple(c["key"]): c["after"] for c in reconciled["changes"]}
    assert changed["BTCUSDT", "BOTH"]["amount"] == fixed(position.amount)
    assert reconciled["stale"] is False


def test_a_reconciled_is_a_head_line_then_each_change_and_recovered_trade(
    live: Simulator, secret_file: Path
) -> None:
    with follow(live, secret_file) as proc:
        lines = Lines(proc)
        lines.snapshot()
        live.cut_streams("usdm")
        live.traffic("usdm")
        head = lines.until("RECONCILED ")[-1]
        said = re.search(r"after a disconnected gap: 2 changes, (\d+) recovered trades?$", head)
        assert said is not None, head
        body = [lines.next() for _ in range(2 + int(said[1]))]  # the balance, the position, each trade
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 143
    assert body[0].startswith("  BALANCE USDT new: wallet=")  # the account held no USDT before
    assert body[1].startswith("  POSITION BTCUSDT BOTH new: amount=")
    assert len(body) > 2
    assert all(line.startswith("  TRADE BTCUSDT ") and " recovered: " in line for line in body[2:])


def test_follow_stops_after_for_with_0(live: Simulator, secret_file: Path) -> None:
    proc = run(account(live, secret_file, "--follow", "--for", "1s"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ACCOUNT usdm")


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_before_the_snapshot_ends_account_at_once_with_its_code(
    server: ScriptedServer, secret_file: Path, signum: int, code: int
) -> None:
    """The stream's listenKey is being created (the server hangs): no snapshot yet, nothing printed."""
    server.script(HANG)
    ws = server.url.replace("http://", "ws://")
    args = [*CLI, "account", "--market", "usdm", "--base-url", server.url, "--stream-url", ws]
    command = [*args, "--api-secret-file", str(secret_file)]
    with subprocess.Popen(command, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        try:
            eventually(lambda: len(server.requests) == 1)
            returncode, took, out, _ = stop(proc, signum)
        finally:
            proc.kill()
    assert (returncode, took < PROMPT) == (code, True), took
    assert out == b""


def test_nothing_secret_is_printed_even_with_the_librarys_logs(live: Simulator, secret_file: Path) -> None:
    """-vv logs every request and frame (redacted): the key, the secret and the listenKey stay out."""
    place_and_fill(live)
    with follow(live, secret_file, "--json", "-vv") as running:
        lines = Lines(running)
        lines.next()
        [listen_key] = live.exchange.live_listen_keys("usdm")
        live.traffic("usdm")
        live.drop_streams("usdm")
        lines.json_until("reconciled")
        running.send_signal(signal.SIGINT)
        assert running.wait(timeout=5) == 130
        assert running.stderr is not None
        stderr = running.stderr.read().decode()
    stdout = "\n".join(lines.seen) + lines.buffer.decode()
    assert "binance_userstream" in stderr  # the logs were on
    assert_no_secret(stdout + stderr, listen_key)


# -- how amounts and the server's names print ----------------------------------------------------


def test_amounts_print_in_fixed_point_with_every_digit_binance_sent() -> None:
    """A Decimal's own str() would print Binance's "0.00000001" as 1E-8 and "0.00000000" as 0E-8."""
    tiny = Balance(asset="BTC", free=Decimal("0.00000001"), locked=Decimal("0.00000000"))
    state = AccountState(balances={"BTC": tiny})
    assert state_json(state, "spot")["balances"] == [
        {"asset": "BTC", "free": "0.00000001", "locked": "0.00000000"}
    ]
    assert ["BTC", "0.00000001", "0.00000000"] in [line.split() for line in state_table(state, "spot")]


def test_a_name_the_server_sent_is_escaped_in_a_line() -> None:
    """A client order id is whatever the order's placer chose: no control character reaches the terminal."""
    order = Order(
        symbol="BTCUSDT",
        order_id=1,
        client_order_id="evil\x1b[2J",
        side="BUY",
        type="LIMIT",
        status="NEW",
        price=Decimal("1"),
        quantity=Decimal("1"),
        executed_quantity=Decimal("0"),
    )
    line = change_line(Change(kind="order", key=order.key, before=None, after=order))
    assert "\x1b" not in line
    assert line.startswith("ORDER BTCUSDT 1 opened: client_order_id=evil")
