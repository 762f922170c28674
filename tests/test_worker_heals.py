"""The heal rules of a worker (`workers._heals.Heals`), without sockets: which accounts owe the log a
Reconciled after a gap, how gaps merge, what a fence drops, how many heals run at once, how a
failure is retried or given up, and which trades a Reconciled recovers."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from binance_userstream.account._family import Snapshot
from binance_userstream.account._mirror import Recovery
from binance_userstream.account._spot import SpotFamily
from binance_userstream.account._state import Order, Reconciled, Trade
from binance_userstream.errors import AuthenticationError, ServerError
from binance_userstream.stream._decode import decode_payload
from binance_userstream.stream._gap import StreamGap
from binance_userstream.workers._heals import SYMBOLS_KEPT, TRADES_KEPT, Heals

SPOT = SpotFamily("spot")


def heals(**options: object) -> Heals:
    options.setdefault("wait", lambda policy, attempt, error: 2.0**attempt)
    return Heals(lambda account_id: SPOT, **options)  # type: ignore[arg-type]


def gap(at: float, last: int | None = None, reason: str = "disconnected", dropped: int = 0) -> StreamGap:
    return StreamGap(reason, at, at + 1, last_event_time=last, dropped=dropped)  # type: ignore[arg-type]


def snapshot(taken_at: int = 10_000, open_symbol: str | None = None) -> Snapshot:
    orders = {}
    if open_symbol is not None:
        order = Order(open_symbol, 7, "c7", "BUY", "LIMIT", "NEW", Decimal(1), Decimal(1), Decimal(0))
        orders[order.key] = order
    return Snapshot(taken_at, {}, {}, orders)


def trade(trade_id: int, time: int, symbol: str = "BTCUSDT") -> Trade:
    one = Decimal(1)
    return Trade(symbol, trade_id, 7, "BUY", one, one, Decimal(0), "BNB", time)


def execution(trade_id: int, time: int, symbol: str = "ETHUSDT") -> object:
    """A spot executionReport of a fill, as the stream decodes it."""
    return decode_payload(
        {
            "e": "executionReport",
            "E": time,
            "s": symbol,
            "c": "c7",
            "S": "BUY",
            "o": "LIMIT",
            "f": "GTC",
            "q": "1",
            "p": "1",
            "P": "0",
            "F": "0",
            "g": -1,
            "C": "",
            "x": "TRADE",
            "X": "PARTIALLY_FILLED",
            "r": "NONE",
            "i": 7,
            "l": "1",
            "z": "1",
            "L": "1",
            "n": "0",
            "N": "BNB",
            "T": time,
            "t": trade_id,
            "I": 1,
            "w": False,
            "m": False,
            "M": True,
            "O": time,
            "Z": "1",
            "Y": "1",
            "Q": "0",
            "W": time,
            "V": "NONE",
        }
    )


def heal_now(
    rules: Heals, account: str, trades: list[Trade], shot: Snapshot | None = None
) -> Reconciled | None:
    """Start `account`'s heal and answer its calls at once."""
    (begin,) = [b for b in rules.ready(0.0) if b.account_id == account]
    shot = shot or snapshot()
    recovery = rules.recovery(account, begin.run, shot)
    assert recovery is not None
    return rules.done(account, begin.run, shot, recovery, trades)


def test_a_gap_makes_its_account_owe_one_reconciled_naming_it() -> None:
    rules = heals()
    rules.gap("a", gap(1.0, last=5_000))
    reconciled = heal_now(rules, "a", [])
    assert reconciled is not None
    assert reconciled.gap == gap(1.0, last=5_000)
    assert (rules.reconciled, len(rules), rules.ready(0.0)) == (1, 0, [])


def test_gaps_while_a_heal_is_owed_merge_into_one_covering_them_all() -> None:
    rules = heals()
    rules.gap("a", gap(1.0, last=5_000, reason="overflow", dropped=3))
    rules.gap("a", gap(4.0, last=2_000, reason="sink", dropped=2))
    reconciled = heal_now(rules, "a", [])
    assert reconciled is not None
    assert reconciled.gap == StreamGap("overflow", 1.0, 5.0, last_event_time=2_000, dropped=5)


def test_a_gap_while_the_heals_calls_are_out_makes_their_answers_too_old_and_the_heal_starts_again() -> None:
    rules = heals()
    rules.gap("a", gap(1.0, last=5_000))
    (begin,) = rules.ready(0.0)
    recovery = rules.recovery("a", begin.run, snapshot())
    assert recovery is not None
    rules.gap("a", gap(3.0, last=6_000))
    assert rules.done("a", begin.run, snapshot(), recovery, []) is None
    reconciled = heal_now(rules, "a", [], snapshot(20_000))
    assert reconciled is not None
    assert reconciled.gap == StreamGap("disconnected", 1.0, 4.0, last_event_time=5_000)


def test_a_fenced_account_owes_nothing_and_its_running_heals_answers_are_ignored() -> None:
    rules = heals()
    rules.gap("a", gap(1.0))
    rules.gap("b", gap(1.0))
    (first, _second) = rules.ready(0.0)
    rules.drop("a")
    assert rules.recovery("a", first.run, snapshot()) is None
    assert rules.done("a", first.run, snapshot(), Recovery(0, ()), []) is None
    assert list(rules.owed) == ["b"]
    assert rules.running == 1


def test_no_more_heals_run_at_once_than_the_bound_and_the_oldest_owed_go_first() -> None:
    rules = heals(concurrency=2)
    for account in "abcde":
        rules.gap(account, gap(1.0))
    assert [b.account_id for b in rules.ready(0.0)] == ["a", "b"]
    assert rules.ready(0.0) == []
    heal_done = rules.owed["a"].run
    assert heal_done is not None
    rules.recovery("a", heal_done, snapshot())
    rules.done("a", heal_done, snapshot(), Recovery(0, ()), [])
    assert [b.account_id for b in rules.ready(0.0)] == ["c"]


def test_a_retryable_failure_is_retried_after_its_backoff_on_the_clock() -> None:
    rules = heals()
    rules.gap("a", gap(1.0))
    (begin,) = rules.ready(100.0)
    assert rules.failed("a", begin.run, ServerError(503, -1000, "busy"), now=100.0) == 2.0
    assert rules.ready(101.9) == []
    assert rules.wake_at() == 102.0
    (again,) = rules.ready(102.0)
    assert (
        rules.failed("a", again.run, ServerError(503, -1000, "busy"), now=102.0) == 4.0
    )  # the backoff grows
    assert rules.ready(105.9) == []
    assert len(rules.ready(106.0)) == 1


def test_a_refused_key_gives_the_heal_up_and_counts_it() -> None:
    rules = heals()
    rules.gap("a", gap(1.0))
    (begin,) = rules.ready(0.0)
    assert rules.failed("a", begin.run, AuthenticationError(401, -2015, "refused"), now=0.0) is None
    assert (len(rules), rules.failed_heals, rules.running) == (0, 1, 0)


def test_recovered_trades_are_rests_from_the_gaps_last_event_on_less_those_the_log_has_after_the_gap() -> (
    None
):
    rules = heals()
    rules.gap("a", gap(1.0, last=5_000))
    rules.saw("a", execution(trade_id=2, time=6_000, symbol="BTCUSDT"))
    rest = [trade(1, 4_000), trade(2, 6_000), trade(3, 7_000)]
    reconciled = heal_now(rules, "a", rest)
    assert reconciled is not None
    assert [t.trade_id for t in reconciled.recovered_trades] == [3]
    assert reconciled.changes == ()  # the worker keeps no state to compare with


def test_an_owed_heal_remembers_at_most_trades_kept_and_the_rest_may_be_recovered_again() -> None:
    rules = heals()
    rules.gap("a", gap(1.0, last=5_000))
    for n in range(TRADES_KEPT + 1):
        rules.saw("a", execution(trade_id=n, time=6_000 + n, symbol="BTCUSDT"))
    assert len(rules.owed["a"].trades) == TRADES_KEPT
    last = TRADES_KEPT  # seen, not remembered: its REST copy comes back too
    reconciled = heal_now(rules, "a", [trade(last - 1, 6_000 + last - 1), trade(last, 6_000 + last)])
    assert reconciled is not None
    assert [t.trade_id for t in reconciled.recovered_trades] == [last]


def test_an_owed_heal_remembers_at_most_symbols_kept() -> None:
    rules = heals()
    rules.gap("a", gap(1.0, last=5_000))
    for n in range(SYMBOLS_KEPT + 5):
        rules.saw("a", execution(trade_id=n, time=6_000 + n, symbol=f"S{n}USDT"))
    assert len(rules.owed["a"].symbols) == SYMBOLS_KEPT


def test_the_recovery_asks_for_the_symbols_of_the_snapshots_orders_and_of_orders_seen_after_the_gap() -> None:
    rules = heals(symbols=["BNBUSDT"])
    rules.gap("a", gap(1.0, last=5_000))
    rules.saw("a", execution(trade_id=2, time=6_000, symbol="ETHUSDT"))
    (begin,) = rules.ready(0.0)
    recovery = rules.recovery("a", begin.run, snapshot(open_symbol="BTCUSDT"))
    assert recovery == Recovery(5_000, ("BNBUSDT", "BTCUSDT", "ETHUSDT"))


def test_without_a_last_event_time_the_recovery_starts_at_the_snapshot() -> None:
    rules = heals()
    rules.gap("a", gap(1.0, last=None, reason="failover"))
    (begin,) = rules.ready(0.0)
    recovery = rules.recovery("a", begin.run, snapshot(taken_at=12_345))
    assert recovery is not None
    assert recovery.start_time == 12_345


# -- the invariant ---------------------------------------------------------------------------------

_ACCOUNTS = st.sampled_from(["a", "b", "c"])
_STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("gap"), _ACCOUNTS),
        st.tuples(st.just("drop"), _ACCOUNTS),
        st.tuples(st.just("start"), _ACCOUNTS),
        st.tuples(st.just("answer"), _ACCOUNTS),
        st.tuples(st.just("fail"), _ACCOUNTS),
        st.tuples(st.just("refuse"), _ACCOUNTS),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(_STEPS)
def test_every_gap_is_followed_by_exactly_one_reconciled_covering_it_unless_its_account_is_fenced_or_refused(
    steps: list[tuple[str, str]],
) -> None:
    rules = heals(concurrency=2, wait=lambda policy, attempt, error: 0.0)
    uncovered: dict[str, list[StreamGap]] = {}  # per account: gaps published, no Reconciled yet
    runs: dict[str, int] = {}
    clock = 0.0
    for n, (step, account) in enumerate(steps):
        clock += 1.0
        if step == "gap":
            published = gap(clock, last=1_000 + n)
            rules.gap(account, published)
            uncovered.setdefault(account, []).append(published)
        elif step in ("drop", "refuse") and (step == "drop" or account in runs):
            if step == "drop":
                rules.drop(account)
            else:
                rules.failed(account, runs[account], AuthenticationError(401, -2015, "refused"), clock)
            uncovered.pop(account, None)  # fenced, or given up: owes nothing
            runs.pop(account, None)
        elif step == "start":
            for begin in rules.ready(clock):
                runs[begin.account_id] = begin.run
        elif step == "fail" and account in runs:
            rules.failed(account, runs.pop(account), ServerError(503, -1000, "busy"), clock)
        elif step == "answer" and account in runs:
            run = runs.pop(account)
            recovery = rules.recovery(account, run, snapshot())
            reconciled = None if recovery is None else rules.done(account, run, snapshot(), recovery, [])
            if reconciled is not None:
                gaps = uncovered.pop(account)
                assert gaps, "a Reconciled with no gap before it"
                covering = reconciled.gap
                for one in gaps:
                    assert covering.started_at <= one.started_at
                    assert covering.ended_at >= one.ended_at
                    assert covering.last_event_time is not None
                    assert one.last_event_time is not None
                    assert covering.last_event_time <= one.last_event_time
        assert rules.running <= 2
        assert set(rules.owed) == {a for a, gaps in uncovered.items() if gaps}
    # What is still owed gets its Reconciled once the heals are let run and answered.
    for _ in range(len(uncovered) + 1):
        for begin in rules.ready(clock + 1e9):
            runs[begin.account_id] = begin.run
        for account, run in list(runs.items()):
            runs.pop(account)
            recovery = rules.recovery(account, run, snapshot())
            if recovery is not None and rules.done(account, run, snapshot(), recovery, []) is not None:
                uncovered.pop(account)
    assert {a for a, gaps in uncovered.items() if gaps} == set()
