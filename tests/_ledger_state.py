"""THE MAPPING, written once: the simulator's ledger of an account in the mirror's types.

The simulator's ledger (`sim.ledger(market)`) is what the account is; the mirror's `AccountState`
is what the client knows of it. The property tests compare them with `account_state(market, view)`,
which says, market by market, which ledger amounts each mirror field is (issue 18's mapping
table): a state built from the stream, or from a snapshot, must equal it.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from binance_userstream import AccountState, Balance, Order, Position, Trade
from binance_userstream.simulator import LedgerBalance, LedgerView

#: The Balance fields each market's mirror holds, read from the same-named ledger amounts.
BALANCE_FIELDS: Mapping[str, tuple[str, ...]] = {
    "spot": ("free", "locked"),
    "margin": ("free", "locked"),
    "usdm": ("wallet", "cross_wallet"),
    "coinm": ("wallet", "cross_wallet"),
    "portfolio": ("free", "locked", "um_wallet", "cm_wallet"),
    "options": ("wallet",),
}
#: Markets whose orders carry a position side (one-way mode: "BOTH").
_POSITION_SIDES = frozenset({"usdm", "coinm", "portfolio"})


def balance(market: str, row: LedgerBalance) -> Balance:
    """One ledger balance as the mirror holds it: the market's amounts, an unreported one zero when
    another of the market's is reported (REST reports every amount of an asset it lists)."""
    names = BALANCE_FIELDS[market]
    amounts = {name: getattr(row, name) for name in names}
    return Balance(row.asset, **{name: value or Decimal(0) for name, value in amounts.items()})


def account_state(market: str, view: LedgerView) -> AccountState:
    """The ledger's balances, positions and open orders, as an AccountState (zero balances, zero
    positions and closed orders absent; `as_of` and `stale` are not the ledger's to say)."""
    balances = {}
    for asset, row in view.balances.items():
        mirrored = balance(market, row)
        if not mirrored.is_zero:
            balances[asset] = mirrored
    positions = {
        key: Position(p.symbol, p.side, p.amount, p.entry_price)
        for key, p in view.positions.items()
        if p.amount != 0
    }
    orders = {
        key: Order(
            symbol=o.symbol,
            order_id=o.order_id,
            client_order_id=o.client_order_id,
            side=o.side,
            type=o.type,
            status=o.status,
            price=o.price,
            quantity=o.quantity,
            executed_quantity=o.executed_quantity,
            position_side=o.position_side if market in _POSITION_SIDES else None,
        )
        for key, o in view.open_orders.items()
        if o.is_open
    }
    return AccountState(balances=balances, positions=positions, open_orders=orders)


def trades(view: LedgerView) -> dict[tuple[str, int], Trade]:
    """Every trade of the ledger, by (symbol, trade id), as the mirror reports one."""
    return {
        (t.symbol, t.trade_id): Trade(
            symbol=t.symbol,
            trade_id=t.trade_id,
            order_id=t.order_id,
            side=t.side,
            price=t.price,
            quantity=t.quantity,
            commission=t.commission,
            commission_asset=t.commission_asset,
            time=t.time,
        )
        for t in view.trades
    }


def same_account(state: AccountState, expected: AccountState) -> bool:
    """The balances, positions and open orders agree (`as_of` and `stale` aside)."""
    return (
        dict(state.balances) == dict(expected.balances)
        and dict(state.positions) == dict(expected.positions)
        and dict(state.open_orders) == dict(expected.open_orders)
    )
