"""The simulator's Binance semantics, each rule spoken to over HTTP with a plain httpx client.

Binance's spot docs say: the three operations; API key only (-2014 malformed, -2015 unknown);
one active key per account, returned again and extended by POST; 60-minute validity; listenKey from
the query or a form body (query wins); -1125 for unknown, expired or closed keys; weight 2 with
X-MBX-USED-WEIGHT-1M; 6,000 per minute answered with 429 + Retry-After, then 418 bans.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator

import httpx
import pytest

from binance_userstream import VirtualClock
from binance_userstream.simulator import Fault, Simulator
from tests.conftest import API_KEY

PATH = "/api/v3/userDataStream"
#: Spot's old lifecycle, retired in production, is what these tests speak to (besides the rest).
pytestmark = pytest.mark.simulator(retired=False)
OTHER_KEY = "Z" * 64


@pytest.fixture
def http(sim: Simulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sim.url, headers={"X-MBX-APIKEY": API_KEY}) as client:
        yield client


def create(http: httpx.Client, api_key: str = API_KEY) -> str:
    response = http.post(PATH, headers={"X-MBX-APIKEY": api_key})
    assert response.status_code == 200, response.text
    return str(response.json()["listenKey"])


def code_of(response: httpx.Response) -> int:
    return int(response.json()["code"])


def test_create_returns_a_listen_key_of_60_characters(http: httpx.Client) -> None:
    key = create(http)
    assert len(key) == 60
    assert key.isalnum()


def test_create_again_returns_the_same_active_key_and_extends_it(
    http: httpx.Client, vclock: VirtualClock
) -> None:
    """A POST on an account with an active key returns that key and extends it by 60 minutes."""
    key = create(http)
    vclock.advance(50 * 60)
    assert create(http) == key
    vclock.advance(50 * 60)  # 100 minutes after the first POST, 50 after the second
    assert http.put(PATH, data={"listenKey": key}).status_code == 200


def test_each_account_has_its_own_key(http: httpx.Client) -> None:
    assert create(http) != create(http, OTHER_KEY)


def test_a_key_expires_60_minutes_after_its_last_keepalive(http: httpx.Client, vclock: VirtualClock) -> None:
    key = create(http)
    vclock.advance(59 * 60)
    assert http.put(PATH, data={"listenKey": key}).status_code == 200
    vclock.advance(59 * 60)
    assert http.put(PATH, data={"listenKey": key}).status_code == 200
    vclock.advance(60 * 60)
    response = http.put(PATH, data={"listenKey": key})
    assert (response.status_code, code_of(response)) == (400, -1125)
    assert response.json()["msg"] == "This listenKey does not exist."


def test_create_after_expiry_gives_a_new_key(http: httpx.Client, vclock: VirtualClock) -> None:
    key = create(http)
    vclock.advance(61 * 60)
    assert create(http) != key


def test_a_closed_key_does_not_exist(http: httpx.Client) -> None:
    key = create(http)
    assert http.request("DELETE", PATH, params={"listenKey": key}).json() == {}
    response = http.put(PATH, data={"listenKey": key})
    assert (response.status_code, code_of(response)) == (400, -1125)
    assert create(http) != key


def test_an_unknown_key_does_not_exist(http: httpx.Client) -> None:
    response = http.request("DELETE", PATH, params={"listenKey": "x" * 60})
    assert (response.status_code, code_of(response)) == (400, -1125)


def test_another_accounts_key_does_not_exist_for_you(http: httpx.Client) -> None:
    theirs = create(http, OTHER_KEY)
    response = http.put(PATH, data={"listenKey": theirs})
    assert (response.status_code, code_of(response)) == (400, -1125)


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
def test_the_listen_key_is_taken_from_the_query_or_a_form_body(http: httpx.Client, method: str) -> None:
    key = create(http)
    assert http.request(method, PATH, params={"listenKey": key}).status_code == 200
    key = create(http)
    assert http.request(method, PATH, data={"listenKey": key}).status_code == 200


def test_when_both_carry_the_listen_key_the_query_wins(http: httpx.Client) -> None:
    key = create(http)
    wins = http.put(PATH, params={"listenKey": key}, data={"listenKey": "bogus"})
    assert wins.status_code == 200
    loses = http.put(PATH, params={"listenKey": "bogus"}, data={"listenKey": key})
    assert code_of(loses) == -1125


def test_a_missing_listen_key_is_minus_1102(http: httpx.Client) -> None:
    response = http.put(PATH)
    assert (response.status_code, code_of(response)) == (400, -1102)


@pytest.mark.parametrize("headers", [{}, {"X-MBX-APIKEY": ""}, {"X-MBX-APIKEY": "has-dashes"}])
def test_a_missing_or_malformed_api_key_is_minus_2014(sim: Simulator, headers: dict[str, str]) -> None:
    response = httpx.post(sim.url + PATH, headers=headers)
    assert (response.status_code, code_of(response)) == (401, -2014)


def test_an_unknown_api_key_is_minus_2015_when_keys_are_configured(vclock: VirtualClock) -> None:
    with Simulator(clock=vclock, api_keys=[API_KEY], retired=False) as sim:
        assert httpx.post(sim.url + PATH, headers={"X-MBX-APIKEY": API_KEY}).status_code == 200
        response = httpx.post(sim.url + PATH, headers={"X-MBX-APIKEY": OTHER_KEY})
        assert (response.status_code, code_of(response)) == (401, -2015)


def test_two_api_keys_of_one_account_share_its_listen_key(vclock: VirtualClock) -> None:
    with Simulator(clock=vclock, api_keys={API_KEY: "alice", OTHER_KEY: "alice"}, retired=False) as sim:
        one = httpx.post(sim.url + PATH, headers={"X-MBX-APIKEY": API_KEY}).json()
        two = httpx.post(sim.url + PATH, headers={"X-MBX-APIKEY": OTHER_KEY}).json()
        assert one == two


def test_every_call_weighs_2_and_says_so(http: httpx.Client) -> None:
    key = create(http)
    assert http.put(PATH, data={"listenKey": key}).headers["X-MBX-USED-WEIGHT-1M"] == "4"
    assert http.delete(PATH, params={"listenKey": key}).headers["X-MBX-USED-WEIGHT-1M"] == "6"


def test_the_weight_window_resets_each_minute(http: httpx.Client, vclock: VirtualClock) -> None:
    create(http)
    create(http)
    vclock.advance(60)
    assert http.post(PATH).headers["X-MBX-USED-WEIGHT-1M"] == "2"


def test_going_over_the_weight_limit_is_429_with_retry_after_then_418(vclock: VirtualClock) -> None:
    vclock.advance(10)  # 50 s left in this minute
    with Simulator(clock=vclock, weight_limit=4, violations_before_ban=2, retired=False) as sim:
        with httpx.Client(base_url=sim.url, headers={"X-MBX-APIKEY": API_KEY}) as http:
            assert [http.post(PATH).status_code for _ in range(2)] == [200, 200]
            limited = [http.post(PATH) for _ in range(2)]
            assert [r.status_code for r in limited] == [429, 429]
            assert limited[0].headers["Retry-After"] == "50"
            assert code_of(limited[0]) == -1003
            banned = http.post(PATH)
            assert (banned.status_code, code_of(banned)) == (418, -1003)
            assert banned.headers["Retry-After"] == "120"
            assert "IP banned until" in banned.json()["msg"]
            vclock.advance(119)
            assert http.post(PATH).status_code == 418
            vclock.advance(1)
            assert http.post(PATH).status_code == 200


def test_retired_mode_answers_410_with_html(vclock: VirtualClock) -> None:
    """Production since 2026-02-20: 410 Gone and an HTML body from the front proxy."""
    with Simulator(clock=vclock, retired=True) as sim:
        for method in ("POST", "PUT", "DELETE"):
            response = httpx.request(method, sim.url + PATH, headers={"X-MBX-APIKEY": API_KEY})
            assert response.status_code == 410
            assert response.headers["content-type"] == "text/html"
            assert response.text.startswith("<html>")


@pytest.mark.parametrize(
    ("fault", "status", "header"),
    [
        (Fault.server_error(502), 502, None),
        (Fault.rate_limited(3), 429, "3"),
        (Fault.banned(600), 418, "600"),
        (Fault.retired(), 410, None),
    ],
)
def test_an_injected_fault_replaces_the_next_answer_only(
    sim: Simulator, http: httpx.Client, fault: Fault, status: int, header: str | None
) -> None:
    sim.inject(fault)
    response = http.post(PATH)
    assert response.status_code == status
    assert response.headers.get("Retry-After") == header
    assert http.post(PATH).status_code == 200


def test_an_injected_drop_closes_the_connection_without_answering(sim: Simulator, http: httpx.Client) -> None:
    sim.inject(Fault.drop())
    with pytest.raises(httpx.RemoteProtocolError):
        http.post(PATH)
    assert http.post(PATH).status_code == 200


def test_an_injected_delay_answers_late(sim: Simulator, http: httpx.Client) -> None:
    sim.inject(Fault.slow(0.3))
    with pytest.raises(httpx.ReadTimeout):
        http.post(PATH, timeout=0.05)


def test_faults_can_be_injected_over_http_from_another_process(sim: Simulator, http: httpx.Client) -> None:
    faults = [Fault.server_error(503).to_json(), Fault.drop().to_json()]
    response = http.post(
        "/_simulator/faults", content=json.dumps(faults), headers={"X-Simulator-Control": "1"}
    )
    assert response.json() == {"queued": 2}
    assert http.post(PATH).status_code == 503
    assert sim.pending_faults() == 1


def test_keys_can_be_lost_on_purpose(sim: Simulator, http: httpx.Client) -> None:
    key = create(http)
    assert http.post("/_simulator/forget-keys", headers={"X-Simulator-Control": "1"}).json() == {
        "forgotten": 1
    }
    assert code_of(http.put(PATH, data={"listenKey": key})) == -1125


@pytest.mark.parametrize(
    ("spec", "fault"),
    [
        ("503", Fault.server_error(503)),
        ("429:7", Fault.rate_limited(7)),
        ("418", Fault.banned(120)),
        ("410", Fault.retired()),
        ("drop", Fault.drop()),
        ("delay:0.5", Fault.slow(0.5)),
    ],
)
def test_faults_parse_from_their_command_line_form(spec: str, fault: Fault) -> None:
    assert Fault.parse(spec) == fault


@pytest.mark.parametrize("spec", ["", "404", "drop:1", "delay", "429:x", "teapot"])
def test_unknown_fault_forms_are_refused(spec: str) -> None:
    with pytest.raises(ValueError, match="unknown fault"):
        Fault.parse(spec)


def test_curl_runs_the_lifecycle_unchanged(sim: Simulator) -> None:
    """A client nobody here wrote: curl, speaking to the simulator exactly as to Binance."""
    header = f"X-MBX-APIKEY: {API_KEY}"

    def curl(*args: str) -> dict[str, str]:
        out = subprocess.run(["curl", "-sS", "-H", header, *args], capture_output=True, text=True, check=True)
        return json.loads(out.stdout)  # type: ignore[no-any-return]

    key = curl("-X", "POST", f"{sim.url}{PATH}")["listenKey"]
    assert curl("-X", "PUT", "-d", f"listenKey={key}", f"{sim.url}{PATH}") == {}
    assert curl("-X", "DELETE", f"{sim.url}{PATH}?listenKey={key}") == {}
    assert curl("-X", "DELETE", f"{sim.url}{PATH}?listenKey={key}")["code"] == -1125


def test_an_expired_key_is_forgotten_when_its_account_gets_a_new_one(
    sim: Simulator, http: httpx.Client, vclock: VirtualClock
) -> None:
    """A simulator left running for days must not hoard every key it ever made."""
    old = create(http)
    vclock.advance(3601)
    new = create(http)
    assert list(sim.exchange._keys) == [new]
    assert http.put(PATH, data={"listenKey": old}).json()["code"] == -1125


def test_the_request_log_is_bounded_and_the_count_is_not(sim: Simulator) -> None:
    from binance_userstream.simulator._server import REQUESTS_KEPT

    with httpx.Client(base_url=sim.url) as client:
        for _ in range(50):
            client.get("/_simulator/state")
    assert sim.request_count == 50
    assert sim.requests.maxlen == REQUESTS_KEPT
