"""The reference pages under docs/reference/ are generated from the spec and list everything in it.

scripts/generate.py writes docs/reference/events/<market>.md for every row of the market table and
docs/reference/operations.md; `make check` (generate.py --check) fails when one is stale. These tests
walk the spec themselves, so a field, an event or an operation the pages leave out fails here.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from binance_userstream._markets import MARKETS
from tests.conftest import ROOT

SPEC = yaml.safe_load((ROOT / "spec" / "userdatastream.yaml").read_text())
SCHEMAS: dict[str, Any] = SPEC["components"]["schemas"]
PAGES = ROOT / "docs" / "reference"

_GENERATE_SPEC = importlib.util.spec_from_file_location("_generate_script", ROOT / "scripts" / "generate.py")
assert _GENERATE_SPEC is not None
assert _GENERATE_SPEC.loader is not None
generate = importlib.util.module_from_spec(_GENERATE_SPEC)
_GENERATE_SPEC.loader.exec_module(generate)


def _ref(schema: dict[str, Any]) -> str | None:
    ref = schema.get("$ref") or next(
        (part["$ref"] for part in schema.get("allOf", ()) if "$ref" in part), None
    )
    return None if ref is None else str(ref).rsplit("/", 1)[-1]


def fields(name: str, wire: str = "", attribute: str = "") -> Iterator[tuple[str, str]]:
    """Every (wire key, attribute path) of schema `name`, nested objects and lists of them included."""
    for key, prop in SCHEMAS[name].get("properties", {}).items():
        wire_path, attr_path = f"{wire}{key}", f"{attribute}{prop['x-python-name']}"
        yield wire_path, attr_path
        if (nested := _ref(prop)) is not None:
            yield from fields(nested, f"{wire_path}.", f"{attr_path}.")
        elif prop.get("type") == "array" and (item := _ref(prop["items"])) is not None:
            yield from fields(item, f"{wire_path}[].", f"{attr_path}[i].")


def section(market: str, model: str) -> str:
    """The part of a market's page under the model's heading."""
    page = (PAGES / "events" / f"{market}.md").read_text()
    heading = f"\n## {model}\n"
    assert heading in page, f"{market}.md has no heading for {model}"
    return page.split(heading, 1)[1].split("\n## ", 1)[0]


EVENTS = [
    (market, name, model.__name__)
    for market, row in MARKETS.items()
    for name, model in row.event_types.items()
]


@pytest.mark.parametrize(("market", "name", "model"), EVENTS, ids=[f"{m}/{n}" for m, n, _ in EVENTS])
def test_each_market_page_lists_every_field_of_each_event_it_decodes(
    market: str, name: str, model: str
) -> None:
    text = section(market, model)
    assert f"Wire name: `{name}`." in text
    assert f"from binance_userstream_client.models import {model}\n" in text
    missing = [(w, a) for w, a in fields(model) if f"| `{w}` | `{a}` |" not in text]
    assert missing == []


def test_the_quantity_of_a_usdm_fill_is_found_by_its_attribute_path() -> None:
    assert "| `o.l` | `order.last_filled_quantity` | `str` | yes |" in section("usdm", "OrderTradeUpdate")
    assert "| `a.B` | `update_data.balances` | `list[AccountUpdateBalance]` | yes |" in section(
        "usdm", "AccountUpdate"
    )


def test_an_event_shows_binances_sample_with_its_source() -> None:
    text = section("usdm", "OrderTradeUpdate")
    sample = (ROOT / "tests" / "data" / "events" / "usdm" / "ORDER_TRADE_UPDATE.json").read_text()
    assert '"e": "ORDER_TRADE_UPDATE"' in sample
    assert '"e": "ORDER_TRADE_UPDATE"' in text
    assert "Source: https://developers.binance.com/docs/derivatives/usds-margined-futures/" in text


def test_the_events_index_links_every_model_of_every_market() -> None:
    index = (PAGES / "events" / "index.md").read_text()
    missing = [(m, n) for m, n, model in EVENTS if f"]({m}.md#{model.lower()})" not in index]
    assert missing == []


OPERATIONS = [
    (method, path, operation)
    for path, item in SPEC["paths"].items()
    for method, operation in item.items()
    if isinstance(operation, dict) and "operationId" in operation
]


@pytest.mark.parametrize(
    ("method", "path", "operation"), OPERATIONS, ids=[op["operationId"] for _, _, op in OPERATIONS]
)
def test_the_operations_page_lists_every_operation_with_its_import(
    method: str, path: str, operation: dict[str, Any]
) -> None:
    page = (PAGES / "operations.md").read_text()
    function, tag = operation["operationId"], operation["tags"][0]
    text = page.split(f"\n### {function}\n", 1)[1].split("\n### ", 1)[0]
    assert f"`{method.upper()} {path}`" in text
    assert f"from binance_userstream_client.api.{tag} import {function}\n" in text
    schemes = {
        name for requirement in operation.get("security", SPEC.get("security")) or () for name in requirement
    }
    security = "SIGNED" if "Signature" in schemes else "USER_STREAM" if schemes else "NONE"
    assert f"- Security: {security}" in text
    for parameter in operation.get("parameters", ()):
        name = parameter.get("name") or SPEC["components"]["parameters"][_ref(parameter)]["name"]
        assert f"| `{name}` |" in text


@pytest.fixture
def pages(tmp_path: Path) -> Path:
    """A copy of the committed reference pages."""
    shutil.copytree(PAGES, tmp_path / "reference")
    return tmp_path / "reference"


def test_check_fails_when_a_page_is_edited_by_hand(pages: Path, capsys: pytest.CaptureFixture[str]) -> None:
    page = pages / "events" / "usdm.md"
    page.write_text(page.read_text().replace("`order.last_filled_quantity`", "`order.last_qty`"))
    assert generate.main(["--check", "--docs", str(pages)]) == 1
    out, err = capsys.readouterr()
    assert "+| `o.l` | `order.last_filled_quantity`" in out
    assert "committed/docs/reference/events/usdm.md" in out
    assert f"{pages} is stale" in err


def test_check_fails_on_an_event_page_of_no_market(pages: Path) -> None:
    (pages / "events" / "futures.md").write_text("# An old market\n")
    assert "committed/docs/reference/events/futures.md" in generate.diff_reference(generate.SPEC, pages)


def python_blocks() -> list[tuple[str, str]]:
    blocks = {
        block: f"{page.relative_to(PAGES)}:{number}"
        for page in sorted(PAGES.rglob("*.md"))
        for number, block in enumerate(re.findall(r"```python\n(.*?)```", page.read_text(), re.DOTALL))
    }
    return [(where, block) for block, where in blocks.items()]


@pytest.mark.parametrize(("where", "block"), python_blocks(), ids=[where for where, _ in python_blocks()])
def test_every_python_block_of_the_reference_runs(where: str, block: str) -> None:
    """The import lines a reader copies (each distinct block once) import what they name."""
    exec(compile(block, where, "exec"), {})  # noqa: S102
