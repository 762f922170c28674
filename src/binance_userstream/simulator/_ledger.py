"""The ledger: per account and market (and isolated margin pair) the orders, trades, balances and
positions the simulator's events have told, so that its REST answers say what its events said.

Every event the simulator generates for an account (`sim.traffic`, `place_order`, `fill_order`,
`cancel_order`) is applied here as it is pushed, whether or not anyone listens: the ledger is what
the account is, the stream only what a connected client saw of it. Applying the very events pushed
(rather than keeping a second account beside them) is what makes both sides agree by construction.
Each change is stamped with the event's own times (`T`, `u`: the simulator's clock, the one its REST
`serverTime` reads). Pure data, no I/O; `view` gives tests a frozen copy.

What each event moves (the mapping the client's mirror follows): spot and margin
`executionReport` (order `s`/`i`, client id `C` if non-empty else `c`, `X`, `p`, `q`, `z`, time
`T`; a `TRADE` adds the trade `t` at `L` x `l`, commission `n` `N`) and `outboundAccountPosition`
(`B[]` free `f`, locked `l`, time `u`); the derivatives' `ORDER_TRADE_UPDATE` (`o`, time the
envelope's `T`; Portfolio Margin's `fs` names its UM or CM side) and `ACCOUNT_UPDATE` (`a.B[]`
wallet `wb`, cross wallet `cw`, `a.P[]` position `pa` at `ep`, side `ps`); Options'
`ORDER_TRADE_UPDATE` and `BALANCE_POSITION_UPDATE` (`B[]` `b`, `P[]` quantity `c`, entry price
`a`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from decimal import Decimal

from attrs import define, frozen

#: The statuses of an order that is no longer open.
CLOSED = frozenset({"FILLED", "CANCELED", "EXPIRED", "REJECTED", "EXPIRED_IN_MATCH"})
#: The markets whose books the ledger keeps (portfolio_pro's stream carries no order).
MARKETS = ("spot", "margin", "usdm", "coinm", "portfolio", "options")


@frozen
class LedgerBalance:
    """One asset's amounts, as the market reports them (None: the market does not report it)."""

    asset: str
    free: Decimal | None = None
    locked: Decimal | None = None
    wallet: Decimal | None = None
    cross_wallet: Decimal | None = None
    um_wallet: Decimal | None = None
    cm_wallet: Decimal | None = None
    update_time: int = 0


@frozen
class LedgerPosition:
    """One position: its signed amount (negative: short) and average entry price."""

    symbol: str
    side: str
    amount: Decimal
    entry_price: Decimal
    update_time: int


@frozen
class LedgerOrder:
    """One order as the exchange holds it."""

    symbol: str
    order_id: int
    client_order_id: str
    side: str
    type: str
    time_in_force: str
    status: str
    price: Decimal
    quantity: Decimal
    executed_quantity: Decimal
    cumulative_quote: Decimal
    position_side: str | None
    time: int
    update_time: int

    @property
    def is_open(self) -> bool:
        return self.status not in CLOSED


@frozen
class LedgerTrade:
    """One fill of one of the account's orders."""

    symbol: str
    trade_id: int
    order_id: int
    side: str
    price: Decimal
    quantity: Decimal
    commission: Decimal
    commission_asset: str
    time: int
    maker: bool = False
    realized_pnl: Decimal = Decimal(0)


@frozen
class LedgerView:
    """A frozen copy of one book: balances by asset, positions by (symbol, side), open orders by
    (symbol, order id), every trade (oldest first), and when it last changed."""

    balances: Mapping[str, LedgerBalance]
    positions: Mapping[tuple[str, str], LedgerPosition]
    open_orders: Mapping[tuple[str, int], LedgerOrder]
    orders: Mapping[tuple[str, int], LedgerOrder]
    trades: tuple[LedgerTrade, ...]
    update_time: int


@define
class Book:
    """One account's state on one market (or one isolated margin pair); mutated under the ledger's
    lock only."""

    balances: dict[str, LedgerBalance]
    positions: dict[tuple[str, str], LedgerPosition]
    orders: dict[tuple[str, int], LedgerOrder]
    trades: list[LedgerTrade]
    update_time: int = 0

    def view(self) -> LedgerView:
        return LedgerView(
            balances=dict(self.balances),
            positions={key: p for key, p in self.positions.items() if p.amount != 0},
            open_orders={key: o for key, o in self.orders.items() if o.is_open},
            orders=dict(self.orders),
            trades=tuple(sorted(self.trades, key=lambda t: (t.symbol, t.trade_id))),
            update_time=self.update_time,
        )


def _empty() -> Book:
    return Book({}, {}, {}, [])


class Ledger:
    """Every account's books, by (account, market, isolated pair or ""): thread-safe."""

    def __init__(self) -> None:
        self._books: dict[tuple[str, str, str], Book] = {}
        self._lock = threading.Lock()

    def view(self, account: str, market: str, symbol: str | None = None) -> LedgerView:
        """A frozen copy of `account`'s book on `market` (of `symbol`'s isolated margin account)."""
        with self._lock:
            book = self._books.get((account, market, symbol or ""))
            return (book or _empty()).view()

    def isolated_symbols(self, account: str) -> list[str]:
        """The isolated margin pairs `account` has a book of."""
        with self._lock:
            return sorted(symbol for who, market, symbol in self._books if who == account and symbol)

    def apply(
        self, account: str, market: str, events: Iterable[Mapping[str, object]], symbol: str | None = None
    ) -> None:
        """Move `account`'s book on `market` (`symbol`: an isolated margin pair's) by `events`, as
        pushed. Events the ledger keeps nothing of (GREEK_UPDATE, ...) are skipped."""
        with self._lock:
            book = self._books.setdefault((account, market, symbol or ""), _empty())
            for event in events:
                _apply(book, market, event)


def _apply(book: Book, market: str, event: Mapping[str, object]) -> None:
    kind = event.get("e")
    if kind == "executionReport":
        _execution_report(book, event)
    elif kind == "outboundAccountPosition":
        time = _int(event["u"])
        for item in _list(event["B"]):
            _set_balance(book, str(item["a"]), time, free=_dec(item["f"]), locked=_dec(item["l"]))
        book.update_time = max(book.update_time, time)
    elif kind == "ORDER_TRADE_UPDATE":
        details = event["o"]
        assert isinstance(details, Mapping)
        _futures_order(book, market, details, _int(event["T"]))
    elif kind == "ACCOUNT_UPDATE" and isinstance(event.get("a"), Mapping):
        _account_update(book, event)
    elif kind == "BALANCE_POSITION_UPDATE":
        time = _int(event["T"])
        for item in _list(event["B"]):
            _set_balance(book, str(item["a"]), time, wallet=_dec(item["b"]))
        for item in _list(event["P"]):
            _set_position(book, str(item["s"]), "BOTH", _dec(item["c"]), _dec(item["a"]), time)
        book.update_time = max(book.update_time, time)


def _execution_report(book: Book, event: Mapping[str, object]) -> None:
    symbol, order_id, time = str(event["s"]), _int(event["i"]), _int(event["T"])
    key = (symbol, order_id)
    before = book.orders.get(key)
    book.orders[key] = LedgerOrder(
        symbol=symbol,
        order_id=order_id,
        client_order_id=str(event["C"] or event["c"]),
        side=str(event["S"]),
        type=str(event["o"]),
        time_in_force=str(event["f"]),
        status=str(event["X"]),
        price=_dec(event["p"]),
        quantity=_dec(event["q"]),
        executed_quantity=_dec(event["z"]),
        cumulative_quote=_dec(event["Z"]),
        position_side=None,
        time=before.time if before else _int(event.get("O", time)),
        update_time=time,
    )
    if event["x"] == "TRADE":
        book.trades.append(
            LedgerTrade(
                symbol=symbol,
                trade_id=_int(event["t"]),
                order_id=order_id,
                side=str(event["S"]),
                price=_dec(event["L"]),
                quantity=_dec(event["l"]),
                commission=_dec(event["n"]),
                commission_asset=str(event["N"]),
                time=time,
                maker=bool(event.get("m")),
            )
        )
    book.update_time = max(book.update_time, time)


def _futures_order(book: Book, market: str, o: Mapping[str, object], time: int) -> None:
    """A derivatives' (or Options') ORDER_TRADE_UPDATE `o`, at the envelope's time `T`."""
    symbol, order_id = str(o["s"]), _int(o["i"])
    key = (symbol, order_id)
    before = book.orders.get(key)
    quantity, executed = _dec(o["q"]), _dec(o["z"])
    average = _dec(o.get("ap", "0"))
    book.orders[key] = LedgerOrder(
        symbol=symbol,
        order_id=order_id,
        client_order_id=str(o["c"]),
        side=str(o["S"]),
        type=str(o["o"]),
        time_in_force=str(o.get("f", "GTC")),
        status=str(o["X"]),
        price=_dec(o["p"]),
        quantity=quantity,
        executed_quantity=executed,
        cumulative_quote=average * executed,
        position_side=str(o["ps"]) if "ps" in o else None,
        time=before.time if before else time,
        update_time=time,
    )
    if o["x"] == "TRADE":
        book.trades.append(
            LedgerTrade(
                symbol=symbol,
                trade_id=_int(o["t"]),
                order_id=order_id,
                side=str(o["S"]),
                price=_dec(o["L"]),
                quantity=_dec(o["l"]),
                commission=_dec(o["n"]),
                commission_asset=str(o["N"]),
                time=_int(o["T"]),
                maker=bool(o.get("m")),
                realized_pnl=_dec(o.get("rp", "0")),
            )
        )
    book.update_time = max(book.update_time, time)


def _account_update(book: Book, event: Mapping[str, object]) -> None:
    time, update = _int(event["T"]), event["a"]
    assert isinstance(update, Mapping)
    unit = event.get("fs")
    for item in _list(update.get("B", [])):
        asset, wallet = str(item["a"]), _dec(item["wb"])
        if unit == "UM":
            _set_balance(book, asset, time, um_wallet=wallet)
        elif unit == "CM":
            _set_balance(book, asset, time, cm_wallet=wallet)
        else:
            _set_balance(book, asset, time, wallet=wallet, cross_wallet=_dec(item["cw"]))
    for item in _list(update.get("P", [])):
        _set_position(book, str(item["s"]), str(item["ps"]), _dec(item["pa"]), _dec(item["ep"]), time)
    book.update_time = max(book.update_time, time)


def _set_balance(book: Book, asset: str, time: int, **amounts: Decimal) -> None:
    before = book.balances.get(asset, LedgerBalance(asset))
    fields = {
        name: getattr(before, name)
        for name in ("free", "locked", "wallet", "cross_wallet", "um_wallet", "cm_wallet")
    }
    fields.update(amounts)
    book.balances[asset] = LedgerBalance(asset, update_time=time, **fields)


def _set_position(book: Book, symbol: str, side: str, amount: Decimal, entry: Decimal, time: int) -> None:
    book.positions[symbol, side] = LedgerPosition(symbol, side, amount, entry, time)


def _list(value: object) -> list[Mapping[str, object]]:
    assert isinstance(value, list)
    return value


def _dec(value: object) -> Decimal:
    return Decimal(str(value))


def _int(value: object) -> int:
    assert isinstance(value, int | str)
    return int(value)
