"""The simulator conforms to spec/: schemathesis generates requests from the spec and checks every answer
(status codes, content types, headers and bodies) against what the spec documents.

Only the operations the simulator serves are probed (`Exchange.served_paths()`), so an operation a
user adds to the spec (the extending guide's walkthrough) keeps `make test` green; the tests below
make sure the simulator serves every operation the package calls (tests/_package_operations.py)
and nothing the spec lacks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import jsonschema
import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, settings
from schemathesis.generation.meta import ParameterLocation
from schemathesis.schemas import BaseSchema

from binance_userstream.simulator import Exchange, Simulator, _account_routes, _metadata
from tests._package_operations import package_operations
from tests.conftest import API_KEY, ROOT

SPEC_PATH = ROOT / "spec" / "userdatastream.yaml"
RETIRED_PATH = "/api/v3/userDataStream"


def _served(ctx: schemathesis.filters.HasAPIOperation) -> bool:
    operation = ctx.operation
    return (operation.method.upper(), operation.path) in SERVED


def _served_retired(ctx: schemathesis.filters.HasAPIOperation) -> bool:
    return _served(ctx) and ctx.operation.path == RETIRED_PATH


def _served_live(ctx: schemathesis.filters.HasAPIOperation) -> bool:
    return _served(ctx) and ctx.operation.path != RETIRED_PATH


def _schema(matcher: Callable[[schemathesis.filters.HasAPIOperation], bool]) -> BaseSchema:
    return schemathesis.openapi.from_path(SPEC_PATH).include(matcher)


schema, live, retired = _schema(_served), _schema(_served_live), _schema(_served_retired)

SPEC = yaml.safe_load(SPEC_PATH.read_text())
#: What the simulator serves that the spec describes: the listenKey lifecycles, the listenToken mint,
#: the account reads, and those of its metadata routes the spec has (the server times).
SERVED = (
    Exchange().served_paths()
    | {("GET", path) for path in _account_routes.ROUTES}
    | {("GET", path) for path in _metadata.ROUTES if "get" in SPEC["paths"].get(path, {})}
)


def _valid_on_the_wire(case: schemathesis.Case) -> bool:
    """Whether a case schemathesis generated as invalid is valid once it is on the wire: only its query
    was made negative, and every query parameter, read back as the wire carries it, fits its schema.
    Schemathesis can draw the *string* "false" for a boolean parameter, which a query string cannot
    tell from the boolean false (`?isIsolated=false`), so a server that accepts it is right."""
    meta = case.meta
    if meta is None or any(
        meta.is_negative_at(where) for where in ParameterLocation if where.value != "query"
    ):
        return False
    operation = SPEC["paths"][case.operation.path].get(case.method.lower())
    if operation is None:  # an undeclared method: not this check's concern
        return False
    declared = {
        parameter["name"]: parameter
        for parameter in operation.get("parameters", [])
        if parameter.get("in") == "query"
    }
    query = dict(case.query or {})
    if any(parameter.get("required") and name not in query for name, parameter in declared.items()):
        return False
    for name, value in query.items():
        if name not in declared:
            return False
        schema = declared[name].get("schema", {})
        if schema.get("type") == "boolean" and value in ("true", "false"):
            value = value == "true"
        if not jsonschema.Draft4Validator(schema).is_valid(value):
            return False
    return True


def negative_data_rejection(ctx: object, response: object, case: schemathesis.Case) -> bool | None:
    """schemathesis's check that invalid data is rejected, but for invalid data the wire cannot tell
    from valid data (`_valid_on_the_wire`)."""
    if _valid_on_the_wire(case):
        return None
    return schemathesis.checks.negative_data_rejection(ctx, response, case)  # type: ignore[arg-type]


#: A schema-valid listenKey that was never created is rightly answered 400 (-1125), as Binance does,
#: and so is a keepalive on a derivatives market with no active key: "valid data must be accepted"
#: cannot hold for PUT and DELETE; every other check runs. Invalid data must be rejected unless the
#: wire cannot tell it from valid data (`negative_data_rejection` above, in place of schemathesis's).
EXCLUDED = [schemathesis.checks.positive_data_acceptance, schemathesis.checks.negative_data_rejection]
#: Production's front proxy answers 410 to every request for the spot path since 2026-02-20, before
#: any check of the request, so a request without the key, or with an undeclared method, gets 410 too.
EXCLUDED_RETIRED = [
    *EXCLUDED,
    schemathesis.checks.negative_data_rejection,
    schemathesis.checks.missing_required_header,
    schemathesis.checks.unsupported_method,
]


@pytest.fixture(scope="module")
def simulator() -> Iterator[Simulator]:
    """Every operation of the spec served, spot's retired lifecycle too (retired=False)."""
    with Simulator(weight_limit=10**9, retired=False) as sim:
        yield sim


@pytest.fixture(scope="module")
def retired_simulator() -> Iterator[Simulator]:
    with Simulator(retired=True, weight_limit=10**9) as sim:
        yield sim


def _spec_operations() -> dict[str, tuple[str, str]]:
    """Each operation of the spec: its operationId to its (method, path)."""
    return {
        operation["operationId"]: (method.upper(), path)
        for path, item in SPEC["paths"].items()
        for method, operation in item.items()
        if method != "servers"
    }


def test_the_simulator_serves_every_operation_the_package_calls_and_only_those() -> None:
    operations = _spec_operations()
    assert package_operations() <= operations.keys()
    assert {operations[name] for name in package_operations()} == SERVED


def test_every_operation_the_simulator_serves_is_in_the_spec() -> None:
    assert set(_spec_operations().values()) >= SERVED


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_simulator_answers_as_the_spec_says(case: schemathesis.Case, simulator: Simulator) -> None:
    case.call_and_validate(
        base_url=simulator.url,
        headers={"X-MBX-APIKEY": API_KEY},
        excluded_checks=EXCLUDED,
        additional_checks=[negative_data_rejection],
    )


@live.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_retired_simulator_serves_the_derivatives_as_the_spec_says(
    case: schemathesis.Case, retired_simulator: Simulator
) -> None:
    response = case.call_and_validate(
        base_url=retired_simulator.url,
        headers={"X-MBX-APIKEY": API_KEY},
        excluded_checks=EXCLUDED,
        additional_checks=[negative_data_rejection],
    )
    assert response.status_code != 410


@retired.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_retired_simulator_answers_spot_with_410_as_the_spec_says(
    case: schemathesis.Case, retired_simulator: Simulator
) -> None:
    response = case.call_and_validate(
        base_url=retired_simulator.url, headers={"X-MBX-APIKEY": API_KEY}, excluded_checks=EXCLUDED_RETIRED
    )
    assert response.status_code == 410
