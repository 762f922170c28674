"""What `binance-userstream account` prints of the mirror: a snapshot as a table or one JSON
document, and each change, gap and Reconciled as a readable line or a JSON line.

Amounts are printed as Binance sent them: a Decimal in fixed-point notation (`0.00000000`, never
`0E-8`), and a string in JSON (a float would lose digits). Names that come from the server
(assets, symbols, client order ids) are escaped and bounded as `listen`'s lines are. The mirror's
types carry no credential: nothing here needs redacting.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import attrs

from binance_userstream._secrets import server_text
from binance_userstream.account import AccountState, Balance, Change, Order, Position, Reconciled, Trade
from binance_userstream.account._state import ChangeKind
from binance_userstream.stream._gap import StreamGap

#: A balance's amounts, in the order a table and a line show them (None: the market reports none).
BALANCE_AMOUNTS = ("free", "locked", "wallet", "cross_wallet", "um_wallet", "cm_wallet")
POSITION_FIELDS = ("amount", "entry_price")
ORDER_FIELDS = (
    "client_order_id",
    "side",
    "type",
    "status",
    "price",
    "quantity",
    "executed_quantity",
    "position_side",
)
TRADE_FIELDS = ("order_id", "side", "price", "quantity", "commission", "commission_asset", "time")

Item = Balance | Position | Order | Trade


def amount(value: Decimal) -> str:
    """A Decimal as Binance writes amounts: fixed-point, its digits kept (`0.010`, `0.00000001`)."""
    return format(value, "f")


def _value(value: object) -> Any:
    """A field's value for JSON: amounts as strings, numbers as numbers, server text as it is."""
    return amount(value) if isinstance(value, Decimal) else value


def _text(value: object) -> str:
    """A field's value for a terminal: amounts fixed-point, server text escaped and bounded."""
    return amount(value) if isinstance(value, Decimal) else server_text(str(value))


def when(ms: int | None) -> str:
    """An exchange time in milliseconds as `2026-12-04 18:47:01.106` (UTC); `-` before any."""
    if ms is None:
        return "-"
    try:
        moment = datetime.fromtimestamp(ms / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        return str(ms)
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{ms % 1000:03d}"


def _fields(item: Item) -> dict[str, Any]:
    """The item's compared fields (not `raw`), None (not reported) left out."""
    return {
        field.name: getattr(item, field.name)
        for field in attrs.fields(type(item))
        if field.name != "raw" and getattr(item, field.name) is not None
    }


def item_json(item: Item) -> dict[str, Any]:
    return {name: _value(value) for name, value in _fields(item).items()}


# -- changes: what an event moved ---------------------------------------------------------------


def changes(before: AccountState, after: AccountState) -> tuple[Change, ...]:
    """Every balance, position and open order that differs between two states, in that order, each
    kind by key: what one applied event changed (as a Reconciled's `changes` says what a snapshot
    changed)."""
    found: list[Change] = []
    tables: tuple[tuple[ChangeKind, Mapping[Any, Any], Mapping[Any, Any]], ...] = (
        ("balance", before.balances, after.balances),
        ("position", before.positions, after.positions),
        ("order", before.open_orders, after.open_orders),
    )
    for kind, old, new in tables:
        for key in sorted(set(old) | set(new)):
            was, now = old.get(key), new.get(key)
            if was != now:
                found.append(Change(kind=kind, key=key, before=was, after=now))
    return tuple(found)


def change_json(change: Change) -> dict[str, Any]:
    return {
        "kind": change.kind,
        "key": list(change.key) if isinstance(change.key, tuple) else change.key,
        "before": None if change.before is None else item_json(change.before),
        "after": None if change.after is None else item_json(change.after),
    }


def change_line(change: Change, at: int | None = None) -> str:
    """`ORDER BTCUSDT 8886775 changed: status=FILLED (was PARTIALLY_FILLED), ...`; `opened:` or
    `new:` with every field for what appeared; `gone (was ...)` for what disappeared. With `at`
    (the state's time) the time follows the kind, as a `listen` line's follows its model."""
    stamp = "" if at is None else f" {when(at)}"
    head = f"{change.kind.upper()}{stamp} {_key(change.key)}"
    if change.before is None and change.after is not None:
        verb = "opened" if change.kind == "order" else "new"
        return f"{head} {verb}: {_shown(change.after, skip=_key_fields(change.kind))}"
    if change.after is None and change.before is not None:
        gone = "no longer open" if change.kind == "order" else "gone"
        return f"{head} {gone} (was {_shown(change.before, skip=_key_fields(change.kind))})"
    assert change.before is not None
    assert change.after is not None
    was, now = _fields(change.before), _fields(change.after)
    moved = [name for name in now if name != "update_time" and was.get(name) != now[name]]
    dropped = [name for name in was if name not in now]
    parts = [f"{name}={_text(now[name])} (was {_or_none(was.get(name))})" for name in moved]
    parts += [f"{name}=none (was {_text(was[name])})" for name in dropped]
    return f"{head} changed: {', '.join(parts)}"


def _or_none(value: object) -> str:
    return "none" if value is None else _text(value)


def _key(key: object) -> str:
    parts = key if isinstance(key, tuple) else (key,)
    return " ".join(_text(part) for part in parts)


def _key_fields(kind: str) -> tuple[str, ...]:
    return {"balance": ("asset",), "position": ("symbol", "side"), "order": ("symbol", "order_id")}[kind]


def _shown(item: Item, skip: Sequence[str] = ()) -> str:
    """`name=value, ...` for the item's fields but `skip` (and an order's update time); a trade's
    time as a UTC time."""
    return ", ".join(
        f"{name}={when(value) if name == 'time' else _text(value)}"
        for name, value in _fields(item).items()
        if name not in skip and name != "update_time"
    )


# -- gaps and heals ------------------------------------------------------------------------------


def gap_json(gap: StreamGap) -> dict[str, Any]:
    """A gap as `listen --json` prints it."""
    return {
        "event": "gap",
        "reason": gap.reason,
        "seconds": round(gap.duration, 3),
        "last_event_time": gap.last_event_time,
        "dropped": gap.dropped,
    }


def trade_line(trade: Trade) -> str:
    return f"TRADE {_key(trade.key)} recovered: {_shown(trade, skip=('symbol', 'trade_id'))}"


def reconciled_json(reconciled: Reconciled) -> dict[str, Any]:
    return {
        "event": "reconciled",
        "gap": gap_json(reconciled.gap),
        "changes": [change_json(change) for change in reconciled.changes],
        "recovered_trades": [item_json(trade) for trade in reconciled.recovered_trades],
        "as_of": reconciled.state.as_of,
        "stale": reconciled.state.stale,
    }


def reconciled_lines(reconciled: Reconciled) -> list[str]:
    """A head line, then one indented line per change and per recovered trade."""
    changed, recovered = len(reconciled.changes), len(reconciled.recovered_trades)
    head = (
        f"RECONCILED {when(reconciled.state.as_of)} after a {reconciled.gap.reason} gap:"
        f" {changed} change{'' if changed == 1 else 's'},"
        f" {recovered} recovered trade{'' if recovered == 1 else 's'}"
    )
    lines = [head]
    lines += [f"  {change_line(change)}" for change in reconciled.changes]
    lines += [f"  {trade_line(trade)}" for trade in reconciled.recovered_trades]
    return lines


# -- the snapshot --------------------------------------------------------------------------------


def state_json(state: AccountState, market: str) -> dict[str, Any]:
    """The whole state as one JSON object: lists sorted by key, amounts as strings."""
    return {
        "event": "snapshot",
        "market": market,
        "as_of": state.as_of,
        "stale": state.stale,
        "balances": [item_json(state.balances[key]) for key in sorted(state.balances)],
        "positions": [item_json(state.positions[key]) for key in sorted(state.positions)],
        "open_orders": [item_json(state.open_orders[key]) for key in sorted(state.open_orders)],
    }


def state_table(state: AccountState, market: str, *, positions: bool = True) -> list[str]:
    """The state as a person reads it: a head line, then balances, positions (derivatives) and open
    orders, each a table whose columns are the fields the market reports."""
    stale = " (stale: a gap is being healed)" if state.stale else ""
    lines = [f"ACCOUNT {market} as of {when(state.as_of)} UTC{stale}"]
    sections: list[tuple[str, Iterable[Item], tuple[str, ...]]] = [
        ("Balances", (state.balances[key] for key in sorted(state.balances)), ("asset", *BALANCE_AMOUNTS)),
    ]
    if positions:
        rows = (state.positions[key] for key in sorted(state.positions))
        sections.append(("Positions", rows, ("symbol", "side", *POSITION_FIELDS)))
    orders = (state.open_orders[key] for key in sorted(state.open_orders))
    sections.append(("Open orders", orders, ("symbol", "order_id", *ORDER_FIELDS)))
    for title, items, columns in sections:
        lines += ["", *_table(title, list(items), columns)]
    return lines


def _table(title: str, items: list[Item], columns: tuple[str, ...]) -> list[str]:
    if not items:
        return [f"{title}: none"]
    shown = [name for name in columns if any(getattr(item, name) is not None for item in items)]
    cells = [[name.upper() for name in shown]]
    cells += [[_or_dash(getattr(item, name)) for name in shown] for item in items]
    widths = [max(len(row[index]) for row in cells) for index in range(len(shown))]
    rows = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in cells
    ]
    return [f"{title}:", *rows]


def _or_dash(value: object) -> str:
    return "-" if value is None else _text(value)
