"""Binance's documented sample of every event: tests/data/events/<market>/<wire name>[-variant].json.

The folder names the market (as `market=` spells it): one wire name can have another shape on
another market (Options' ORDER_TRADE_UPDATE), so a sample decodes with its market's table
(`Market.event_types`), the way that market's stream decodes it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from binance_userstream._markets import MARKETS, Market
from tests.conftest import ROOT

DATA = ROOT / "tests" / "data" / "events"
SAMPLES = sorted(DATA.glob("*/*.json"))
"""Every sample file, in a stable order."""


def sample_id(path: Path) -> str:
    """`usdm/ORDER_TRADE_UPDATE`: a sample's test id."""
    return f"{path.parent.name}/{path.stem}"


def load(path: Path) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return payload


def market_of(path: Path) -> Market:
    """The market whose stream sends this sample (its folder)."""
    return MARKETS[path.parent.name]


def model_of(path: Path) -> type[Any]:
    """The model the sample's market decodes it to."""
    return market_of(path).event_types[load(path)["e"]]
