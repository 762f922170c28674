"""What the package says it is, where a newcomer first reads: its docstring, its distribution's
description, and the command's top-level --help. They describe the package as it is now (events,
listenKeys kept alive, WebSocket API subscriptions), and their examples use markets that work."""

from __future__ import annotations

import ast
import tomllib

import binance_userstream
from binance_userstream import MARKETS
from binance_userstream._cli import COMMANDS
from tests.conftest import ROOT
from tests.test_cli import cli


def _example() -> ast.Module:
    """The code in the package docstring: everything from its first `from` line."""
    doc = binance_userstream.__doc__ or ""
    return ast.parse(doc[doc.index("\nfrom ") :])


def test_the_package_example_streams_a_market_whose_stream_works() -> None:
    """Spot's listenKey, the default market, was retired on 2026-02-20 (Binance's spot CHANGELOG,
    2026-01-21): an example without market= would meet a 410."""
    calls = [
        node
        for node in ast.walk(_example())
        if isinstance(node, ast.Call)
        and getattr(node.func, "id", None) in ("UserDataStream", "AsyncUserDataStream")
    ]
    assert calls
    for call in calls:
        [market] = [kw.value for kw in call.keywords if kw.arg == "market"]
        assert isinstance(market, ast.Constant)
        assert MARKETS[market.value].retired is None


def test_the_package_says_it_streams_events_not_only_a_listen_key_lifecycle() -> None:
    summary = (binance_userstream.__doc__ or "").splitlines()[0]
    described = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["description"]
    assert described == summary  # one sentence, said the same way in both places
    assert "events" in summary
    assert "lifecycle" not in summary


def test_top_level_help_shows_every_command_in_its_examples() -> None:
    proc = cli("--help")
    examples = proc.stdout[proc.stdout.index("examples:") :]
    for command in COMMANDS:
        assert f"binance-userstream {command} " in examples, command
