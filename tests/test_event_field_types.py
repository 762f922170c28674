"""A typed event holds what the spec declares, or the frame arrives as an UnknownEvent.

The generated from_dict checks each property's JSON type as spec/userdatastream.yaml declares it: a
string is a str, an integer an int (not a bool, not a float), a boolean True or False, an object a
dict, an array a list, and null only where the property is `nullable`. A payload that breaks one is
not half-typed (a float price, a string order id, `"false"` read as true): the stream delivers it as
an UnknownEvent with its raw payload (stream/_decode.py's contract). The cases are generated from the spec:
every property of every event schema, nested objects and array items included, set to each JSON
value of another type, in a documented sample of that event (tests/data/events/), decoded with its
market's table: one wire name can have a schema per market (`x-markets`), so cases are per schema.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from binance_userstream_client.models import (
    EVENT_TYPES,
    EVENT_TYPES_BY_MARKET,
    OrderTradeUpdateOrder,
    UnknownEvent,
)
from binance_userstream_client.types import UNSET

from binance_userstream.stream._decode import EventTypes, decode_payload
from tests._samples import SAMPLES as SAMPLE_FILES
from tests._samples import load, market_of, model_of
from tests.conftest import ROOT

SPEC = yaml.safe_load((ROOT / "spec" / "userdatastream.yaml").read_text())
SCHEMAS: dict[str, Any] = SPEC["components"]["schemas"]

#: One JSON value of each type, as a parser makes them.
VALUES: dict[str, Any] = {
    "string": "7",
    "integer": 7,
    "number": 7.5,
    "boolean": False,
    "null": None,
    "object": {"x": "1"},
    "array": ["1"],
}


def _resolved(prop: dict[str, Any]) -> dict[str, Any]:
    """A property's schema with `$ref` and `allOf: [$ref]` followed (its own keys kept)."""
    if "$ref" in prop:
        return _resolved(SCHEMAS[prop["$ref"].rpartition("/")[2]])
    if "allOf" in prop:
        return {**_resolved(prop["allOf"][0]), **{k: v for k, v in prop.items() if k != "allOf"}}
    return prop


def _allowed(prop: dict[str, Any]) -> set[str]:
    """The JSON types the spec allows for a property."""
    if "oneOf" in prop:
        return set().union(*(_allowed(_resolved(option)) for option in prop["oneOf"]))
    allowed = {prop["type"]}
    if prop["type"] == "number":
        allowed.add("integer")  # JSON has one number type; 7 is a number
    if prop.get("nullable"):
        allowed.add("null")
    return allowed


def _fields(schema: dict[str, Any], payload: dict[str, Any], path: tuple[Any, ...] = ()) -> Iterator[Any]:
    """(path in the payload, allowed types) of every property of `schema`, present in `payload` or
    not, and of the objects nested in `payload` (an array's first item for an array)."""
    for key, raw in schema["properties"].items():
        prop = _resolved(raw)
        yield (*path, key), _allowed(prop)
        value = payload.get(key)
        if prop.get("type") == "object" and "properties" in prop and isinstance(value, dict):
            yield from _fields(prop, value, (*path, key))
        if prop.get("type") == "array" and isinstance(value, list) and value:
            items = _resolved(prop["items"])
            if "properties" in items:
                yield from _fields(items, value[0], (*path, key, 0))


def _samples() -> dict[str, tuple[dict[str, Any], EventTypes]]:
    """One documented payload per event schema (the first sample file of each), with the table of
    the market it comes from."""
    found: dict[str, tuple[dict[str, Any], EventTypes]] = {}
    for path in SAMPLE_FILES:
        found.setdefault(model_of(path).__name__, (load(path), market_of(path).event_types))
    return found


SAMPLES = {name: payload for name, (payload, _) in _samples().items()}
TABLES = {name: table for name, (_, table) in _samples().items()}
EVENT_SCHEMAS = {name: schema for name, schema in SCHEMAS.items() if "x-event" in schema}
MODELS = {
    model.__name__: model
    for table in [EVENT_TYPES, *EVENT_TYPES_BY_MARKET.values()]
    for model in table.values()
}
CASES = [
    pytest.param(event, path, wrong, id=f"{event}.{'.'.join(map(str, path))}={wrong}")
    for event, schema in sorted(EVENT_SCHEMAS.items())
    for path, allowed in _fields(schema, SAMPLES[event])
    for wrong in sorted(set(VALUES) - allowed)
]


def _with(payload: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(payload)
    target: Any = changed
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return changed


def test_every_event_schema_has_a_documented_sample_to_mutate() -> None:
    assert set(EVENT_SCHEMAS) == set(SAMPLES) == set(MODELS)


@pytest.mark.parametrize(("event", "path", "wrong"), CASES)
def test_a_field_of_another_type_than_the_spec_declares_makes_an_unknown_event_with_the_raw_payload(
    event: str, path: tuple[Any, ...], wrong: str
) -> None:
    payload = _with(SAMPLES[event], path, copy.deepcopy(VALUES[wrong]))
    decoded = decode_payload(payload, TABLES[event])
    assert type(decoded) is UnknownEvent
    assert decoded.to_dict() == payload


@pytest.mark.parametrize("event", sorted(SAMPLES))
def test_each_documented_sample_still_decodes_typed(event: str) -> None:
    decoded = decode_payload(copy.deepcopy(SAMPLES[event]), TABLES[event])
    assert type(decoded) is MODELS[event]
    assert decoded.to_dict() == SAMPLES[event]


@pytest.mark.parametrize(
    ("event", "path"),
    [("OrderTradeUpdate", ("o", "p")), ("ExecutionReport", ("N",)), ("OptionsGreekUpdate", ("G", 0, "d"))],
)
def test_every_value_of_an_allowed_type_decodes_typed(event: str, path: tuple[Any, ...]) -> None:
    """The one check that can be too strict: an allowed type is taken (a nullable string: null too)."""
    schema = _resolved(EVENT_SCHEMAS[event])
    allowed = dict(_fields(schema, SAMPLES[event]))[path]
    for kind in allowed:
        payload = _with(SAMPLES[event], path, VALUES[kind])
        assert type(decode_payload(payload, TABLES[event])) is MODELS[event], kind


def test_the_error_names_the_model_the_field_and_the_types_but_not_the_value() -> None:
    order = copy.deepcopy(SAMPLES["OrderTradeUpdate"]["o"])
    order["p"] = 12345.678
    expected = r"OrderTradeUpdateOrder: 'p' must be a string, not a number"
    with pytest.raises(TypeError, match=expected) as raised:
        OrderTradeUpdateOrder.from_dict(order)
    assert "12345" not in str(raised.value)


def test_an_integer_field_refuses_a_bool() -> None:
    order = _with(SAMPLES["OrderTradeUpdate"], ("o", "i"), True)
    assert type(decode_payload(order)) is UnknownEvent


def test_unknown_event_keeps_a_mistyped_type_or_time_as_a_raw_field() -> None:
    """UnknownEvent takes any payload: a declared field of another type is unset and kept raw."""
    payload = {"e": 5, "E": 1.5, "x": [1]}
    event = UnknownEvent.from_dict(payload)
    assert event.event_type is UNSET
    assert event.event_time is UNSET
    assert event["e"] == 5
    assert event["E"] == 1.5
    assert event.to_dict() == payload
    assert type(decode_payload(payload)) is UnknownEvent


def test_cases_cover_nested_objects_and_array_items() -> None:
    paths = {case.values[:2] for case in CASES}
    assert ("OrderTradeUpdate", ("o", "p")) in paths
    assert ("AccountUpdate", ("a", "B", 0, "wb")) in paths
    assert ("AccountUpdate", ("a", "B")) in paths
    assert ("ExecutionReport", ("N",)) in paths


def test_cases_cover_each_markets_own_shape_of_a_shared_wire_name() -> None:
    paths = {case.values[:2] for case in CASES}
    assert ("OptionsOrderTradeUpdate", ("o", "i")) in paths
    assert ("OptionsAccountUpdate", ("eq",)) in paths
    assert ("OptionsGreekUpdate", ("G", 0, "d")) in paths
