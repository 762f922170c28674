"""The weight budget's decisions, without sockets: how long a call waits, given the weight used this
minute, the limit, the time and the call's weight; one count per ban group, on an injected clock.

Binance counts REQUEST_WEIGHT per IP per calendar minute, reset when the next minute starts
(https://developers.binance.com/docs/binance-spot-api-docs/websocket-api/rate-limits, "Rate limits
are accounted by intervals"); the limits: spot 6,000
(https://developers.binance.com/docs/binance-spot-api-docs/rest-api/limits), USD-M and COIN-M 2,400
(https://developers.binance.com/docs/derivatives/usds-margined-futures/general-info).
"""

from __future__ import annotations

import pytest

from binance_userstream import BudgetWait, VirtualClock, WeightBudget
from binance_userstream._budget import LIMITS, UNDECLARED_WEIGHT, call_weight, wait_before

SPOT = "api.binance.com"


def test_a_call_that_fits_under_the_limit_goes_at_once() -> None:
    assert wait_before(used=5990, minute=0, limit=6000, now=10.0, weight=10) == 0.0


def test_a_call_that_would_cross_the_limit_waits_for_the_next_minute() -> None:
    assert wait_before(used=5995, minute=0, limit=6000, now=10.0, weight=10) == 50.0


def test_a_count_from_an_earlier_minute_holds_nothing_back() -> None:
    assert wait_before(used=6000, minute=0, limit=6000, now=61.0, weight=10) == 0.0


def test_a_group_without_a_limit_never_waits() -> None:
    assert wait_before(used=10**9, minute=0, limit=None, now=10.0, weight=10) == 0.0


def test_a_call_heavier_than_the_whole_limit_waits_only_for_a_fresh_minute() -> None:
    assert wait_before(used=0, minute=0, limit=5, now=10.0, weight=80) == 0.0
    assert wait_before(used=1, minute=0, limit=5, now=10.0, weight=80) == 50.0


def test_the_documented_limits_by_ban_group() -> None:
    assert dict(LIMITS) == {
        "binance-spot": 6000,
        "binance-usdm": 2400,
        "binance-coinm": 2400,
        "binance-portfolio-margin": 6000,
        "binance-options": 6000,
    }


def test_reserving_counts_the_weight_until_the_limit_then_says_how_long_to_wait() -> None:
    budget = WeightBudget(clock=VirtualClock(start=10.0))
    assert budget.reserve(SPOT, 5990) is None
    assert budget.reserve(SPOT, 20) == BudgetWait("binance-spot", 20, 5990, 6000, 50.0)
    assert budget.used(SPOT) == 5990  # a call told to wait is not counted


def test_hosts_of_one_ban_group_share_one_count() -> None:
    budget = WeightBudget(clock=VirtualClock(start=10.0))
    budget.reserve("api1.binance.com", 6000)
    assert budget.used("api4.binance.com") == 6000
    assert budget.used("fapi.binance.com") == 0


def test_the_count_starts_again_when_the_minute_rolls_over() -> None:
    clock = VirtualClock(start=10.0)
    budget = WeightBudget(clock=clock)
    budget.reserve(SPOT, 6000)
    clock.advance(50)
    assert budget.used(SPOT) == 0
    assert budget.reserve(SPOT, 20) is None


def test_an_answers_used_weight_raises_the_count_but_never_lowers_it() -> None:
    """The header counts other programs on the IP too; the budget's own count, calls in flight."""
    budget = WeightBudget(clock=VirtualClock(start=10.0))
    budget.reserve(SPOT, 30)
    budget.observe(SPOT, 5000)
    assert budget.used(SPOT) == 5000
    budget.observe(SPOT, 12)
    assert budget.used(SPOT) == 5000


def test_a_limit_can_be_given_for_a_host_of_no_known_group() -> None:
    budget = WeightBudget(clock=VirtualClock(start=10.0), limits={"127.0.0.1:8765": 3})
    budget.reserve("127.0.0.1:8765", 3)
    held = budget.reserve("127.0.0.1:8765", 1)
    assert held is not None
    assert held.limit == 3


@pytest.mark.parametrize("host", ["127.0.0.1:8765", "testnet.binancefuture.com"])
def test_hosts_of_no_known_limit_are_counted_and_never_held(host: str) -> None:
    budget = WeightBudget(clock=VirtualClock(start=10.0))
    assert budget.reserve(host, 10**6) is None
    assert budget.reserve(host, 10**6) is None
    assert budget.used(host) == 2 * 10**6


OPEN_ORDERS = (80, (("symbol", 6),), "ip")


def test_a_call_sending_a_with_parameter_counts_that_parameters_weight() -> None:
    """Spot's open orders: 6 with a symbol, 80 without
    (https://developers.binance.com/docs/binance-spot-api-docs/rest-api/trading-endpoints)."""
    assert call_weight(OPEN_ORDERS, {"symbol", "timestamp"}) == 6


def test_a_call_sending_no_with_parameter_counts_the_default() -> None:
    assert call_weight(OPEN_ORDERS, {"timestamp"}) == 80


def test_the_first_with_parameter_sent_decides_in_the_specs_order() -> None:
    assert call_weight((20, (("orderId", 5), ("fromId", 10)), "ip"), {"fromId", "orderId"}) == 5


def test_a_weight_counted_per_uid_costs_the_ips_budget_nothing() -> None:
    assert call_weight((1, (), "uid"), ()) == 0


def test_a_request_of_no_declared_operation_counts_one() -> None:
    assert call_weight(None, ()) == UNDECLARED_WEIGHT == 1
