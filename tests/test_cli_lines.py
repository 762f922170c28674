"""`listen`'s readable lines: what a person watching needs of each event (symbol, side, status,
quantity, price, balances), from one table of attributes per event model, checked here against
Binance's documented sample of every event (tests/data/events)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from attrs import define
from binance_userstream_client.models import EVENT_TYPES, EVENT_TYPES_BY_MARKET, UnknownEvent

from binance_userstream._markets import MARKETS
from binance_userstream._readable import SHOWN, line
from binance_userstream.stream._decode import decode
from tests._samples import SAMPLES, market_of, sample_id
from tests.conftest import ROOT


def _sample(market: str, name: str) -> str:
    return (ROOT / "tests/data/events" / market / f"{name}.json").read_text()


def test_every_event_model_has_a_row() -> None:
    assert set(EVENT_TYPES.values()) <= set(SHOWN)
    for table in EVENT_TYPES_BY_MARKET.values():
        assert set(table.values()) <= set(SHOWN)


@pytest.mark.parametrize("path", SAMPLES, ids=sample_id)
def test_every_attribute_a_row_names_is_one_its_model_has(path: Path) -> None:
    """A misspelt attribute in the table raises AttributeError here, not in a user's terminal."""
    event = decode(path.read_text(), market_of(path).event_types)
    assert type(event) in SHOWN
    line(event)  # raises AttributeError for an attribute the model (or a list's element) lacks


def test_an_order_line_shows_its_time_symbol_side_status_quantity_and_price() -> None:
    order = line(decode(_sample("usdm", "ORDER_TRADE_UPDATE")))
    assert order.startswith("OrderTradeUpdate 2019-09-19 07:51:05.651 symbol=BTCUSDT, side=SELL, ")
    assert "status=NEW" in order
    assert "quantity=0.001" in order
    assert "price=0" in order


def test_a_spot_execution_report_shows_the_same_as_a_futures_order() -> None:
    report = line(decode(_sample("spot", "executionReport")))
    for label in ("symbol=", "side=", "status=", "quantity=", "price="):
        assert label in report


def test_an_account_position_shows_each_balance() -> None:
    position = line(decode(_sample("spot", "outboundAccountPosition")))
    assert position.endswith("balances=[ETH free=10000.000000 locked=0.000000]")


def test_an_account_update_shows_balances_and_positions() -> None:
    update = line(decode(_sample("usdm", "ACCOUNT_UPDATE")))
    assert "balances=[" in update
    assert "positions=[" in update
    assert "wallet_balance=" in update


def test_the_listen_key_of_an_expired_key_is_shown_redacted() -> None:
    payload = json.loads(_sample("usdm", "listenKeyExpired"))
    key = payload["listenKey"]
    shown = line(decode(json.dumps(payload)))
    assert key not in shown
    assert f"listen_key={key[:4]}…" in shown


def test_an_event_no_row_knows_shows_its_plain_attributes() -> None:
    """A model added to the spec after the table was written."""

    @define
    class NewEvent:
        event_type: str
        event_time: int
        symbol: str
        nested: list[str]

    shown = line(NewEvent("NEW_EVENT", 1, "BTCUSDT", ["x"]))
    assert shown == "NewEvent 1970-01-01 00:00:00.001 symbol=BTCUSDT"


def test_server_text_in_a_line_cannot_move_the_terminal_or_forge_a_line() -> None:
    payload = json.loads(_sample("spot", "balanceUpdate"))
    payload["a"] = "BTC\x1b[2J\r\nFORGED"
    shown = line(decode(json.dumps(payload)))
    assert "\x1b" not in shown
    assert "\n" not in shown
    assert "\r" not in shown


@pytest.mark.parametrize("event_time", ["²", "9" * 5000], ids=["superscript-digit", "5000-digits"])
def test_an_event_time_int_refuses_is_shown_as_sent_not_raised(event_time: str) -> None:
    """`str.isdigit` takes "²", and int() refuses a number of more than 4,300 digits: the line shows
    the time as sent instead of raising, which ended `listen` on one malformed event."""
    shown = line(decode(json.dumps({"e": "NEW_EVENT", "E": event_time})))
    assert shown.startswith("UnknownEvent event_time=")


def test_an_event_time_that_is_no_number_is_escaped_and_bounded_like_other_server_text() -> None:
    shown = line(decode(json.dumps({"e": "NEW_EVENT", "E": "1\x1b[2J\r\nFORGED" + "x" * 5000})))
    assert "\x1b" not in shown
    assert "\n" not in shown
    assert "\r" not in shown
    assert len(shown) < 400


def test_an_unknown_event_line_names_the_event_type_it_carries() -> None:
    """Its class says nothing of what came: a type the spec does not know, or a known one that does
    not decode (a mistyped field), is told by the `e` it carries."""
    assert "type=NEW_EVENT" in line(decode(json.dumps({"e": "NEW_EVENT", "E": 1})))
    mistyped = decode(json.dumps({"e": "ORDER_TRADE_UPDATE", "E": 1, "T": 1, "o": {"s": 5}}))
    assert isinstance(mistyped, UnknownEvent)
    assert "type=ORDER_TRADE_UPDATE" in line(mistyped)


def test_an_options_order_line_shows_what_a_futures_order_line_shows() -> None:
    order = line(decode(_sample("options", "ORDER_TRADE_UPDATE"), MARKETS["options"].event_types))
    assert order.startswith("OptionsOrderTradeUpdate 2019-09-19 07:51:05.651 symbol=BTCUSDT, side=SELL, ")
    for label in ("status=NEW", "quantity=0.001", "price=0"):
        assert label in order


def test_an_options_greek_update_shows_each_underlyings_greeks() -> None:
    greeks = line(decode(_sample("options", "GREEK_UPDATE"), MARKETS["options"].event_types))
    assert greeks.endswith(
        "greeks=[BTCUSDT delta=-0.01304097 gamma=-0.00000124 theta=16.11648100 vega=-3.83444011]"
    )


def test_a_portfolio_margin_risk_line_shows_its_level_and_uni_mmr() -> None:
    risk = line(decode(_sample("portfolio", "riskLevelChange"), MARKETS["portfolio"].event_types))
    assert risk == (
        "PortfolioRiskLevelChange 2020-04-24 11:19:47.525 risk_level=MARGIN_CALL, uni_mmr=1.99999999, "
        "account_equity=30.23416728, maintenance_margin=15.11708371"
    )


def test_a_portfolio_margin_order_on_its_margin_account_shows_what_a_spot_order_shows() -> None:
    """The two documented samples are the same order: one line but for the model's name."""
    report = line(decode(_sample("portfolio", "executionReport"), MARKETS["portfolio"].event_types))
    assert report == "Portfolio" + line(decode(_sample("spot", "executionReport")))


def test_an_open_order_loss_line_shows_each_assets_loss() -> None:
    loss = line(decode(_sample("portfolio", "openOrderLoss"), MARKETS["portfolio"].event_types))
    assert loss.endswith("losses=[BUSD amount=-0.1232313; BNB amount=-12.1232313]")
