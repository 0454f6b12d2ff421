"""Hostile self-serve link tokens and weak service secrets: refused, never a 500.

`GET /payment-method` is open (the signed link is the credential), so anyone can send it any
token; the guard must answer 403 JSON for all of them. The API token and link secret are checked
when the service starts: a weak one stops it with one line naming the variable.
"""

from __future__ import annotations

import asyncio
import datetime as dt

import httpx
import pytest

from notify.links import UPDATE_PAYMENT, LinkError, sign, verify
from paycycle.errors import EXIT_USAGE, ConfigError
from tests.code.test_cli_errors import assert_one_line_error, paycycle, root  # noqa: F401
from tests.code.test_retention import signed_claims

SECRET = "link-secret-for-tests-0123456789"
API_TOKEN = "api-token-for-tests-0123456789"
NOW = dt.datetime.now(dt.UTC)
HOUR = 3600

HOSTILE_QUERIES = [
    "token=abc.%C3%A9",  # the reported 500: non-ASCII MAC
    "token=%C3%A9.%C3%A9",
    "token=%E2%80%AE.abc",  # right-to-left override
    "token=abc.%FF%FE",  # not UTF-8 at all
    "token=abc.def%00",  # NUL
    "token=" + "A" * 60_000 + ".B",  # oversized (httpx caps URLs at 64 KiB)
    "token=...",
    "token=abc.def&token=x.y",
    "token=%20.%20",
    "token",
]
# authentic MACs over claims a signer would never issue
FORGED_CLAIMS = [
    {"c": 1, "p": UPDATE_PAYMENT, "exp": 10**30},  # past datetime's range
    {"c": 1e400, "p": UPDATE_PAYMENT, "exp": 1},  # inf
    {"c": "x", "p": UPDATE_PAYMENT, "exp": 1},
    {"c": 1, "p": UPDATE_PAYMENT, "exp": -(10**20)},
    [1, 2, 3],
    "just a string",
    None,
]


def _guard(monkeypatch: pytest.MonkeyPatch, token: str = API_TOKEN, secret: str | None = SECRET):
    from serving.guard import Guard

    monkeypatch.setenv("PAYCYCLE_API_TOKEN", token)
    if secret is None:
        monkeypatch.delenv("PAYCYCLE_LINK_SECRET", raising=False)
    else:
        monkeypatch.setenv("PAYCYCLE_LINK_SECRET", secret)

    async def inner(scope, receive, send) -> None:  # noqa: ANN001 - the app behind the guard
        raise AssertionError("the self-serve route must be answered by the guard")

    return Guard(inner)


def _get(app, path: str, query: str) -> httpx.Response:  # noqa: ANN001
    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=True)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.get(f"{path}?{query}")

    return asyncio.run(call())


@pytest.mark.parametrize("query", HOSTILE_QUERIES, ids=lambda q: q[:24])
def test_hostile_link_token_is_403_json(monkeypatch: pytest.MonkeyPatch, query: str) -> None:
    r = _get(_guard(monkeypatch), "/payment-method", query)
    assert r.status_code == 403, r.text
    assert r.json()["error"].startswith("link refused: token:")


@pytest.mark.parametrize("claims", FORGED_CLAIMS, ids=str)
def test_authentic_mac_over_bad_claims_is_403(monkeypatch: pytest.MonkeyPatch, claims) -> None:  # noqa: ANN001
    token = signed_claims(claims, SECRET)
    r = _get(_guard(monkeypatch), "/payment-method", f"token={token}")
    assert r.status_code == 403, r.text
    assert "malformed" in r.json()["error"]


def test_verify_refuses_non_ascii_with_link_error() -> None:
    good = sign(7, UPDATE_PAYMENT, NOW + dt.timedelta(hours=1), SECRET)
    body, mac = good.split(".")
    for token in ("abc.é", f"{body}.{mac[:-1]}é", f"{body}é.{mac}", "é"):
        with pytest.raises(LinkError, match="malformed"):
            verify(token, SECRET, UPDATE_PAYMENT)
    assert verify(good, SECRET, UPDATE_PAYMENT).customer_id == 7  # the genuine one still works


def test_genuine_link_still_answers_200(monkeypatch: pytest.MonkeyPatch) -> None:
    token = sign(7, UPDATE_PAYMENT, NOW + dt.timedelta(hours=1), SECRET)
    r = _get(_guard(monkeypatch), "/payment-method", f"token={token}")
    assert r.status_code == 200 and r.json()["customer_id"] == 7


@pytest.mark.parametrize(
    ("token", "problem"),
    [
        ("t", "at least 16"),
        ("x" * 15, "at least 16"),
        ("change-me-five", "placeholder"),
        ("CHANGE-ME-but-long-enough-anyway", "placeholder"),
        ("sixteen chars with spaces", "printable ASCII"),
        ("tokén-with-accents-0123456789", "printable ASCII"),
    ],
)
def test_weak_api_token_stops_the_guard(monkeypatch: pytest.MonkeyPatch, token, problem) -> None:  # noqa: ANN001
    with pytest.raises(ConfigError) as exc:
        _guard(monkeypatch, token=token)
    message = str(exc.value)
    assert message.startswith("PAYCYCLE_API_TOKEN:") and problem in message
    assert "\n" not in message and repr(token) not in message  # the secret is not echoed


def test_short_link_secret_stops_the_guard_not_each_request(monkeypatch) -> None:  # noqa: ANN001
    with pytest.raises(ConfigError, match="PAYCYCLE_LINK_SECRET: must be set to at least 16"):
        _guard(monkeypatch, secret="short")
    r = _get(_guard(monkeypatch, secret=None), "/payment-method", "token=a.b")
    assert r.status_code == 503 and "not configured" in r.json()["error"]  # unset: links off


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"PAYCYCLE_API_TOKEN": "t"}, "PAYCYCLE_API_TOKEN: must be at least 16"),
        ({"PAYCYCLE_API_TOKEN": "change-me-five"}, "PAYCYCLE_API_TOKEN: still the .env.example"),
        (
            {"PAYCYCLE_API_TOKEN": API_TOKEN, "PAYCYCLE_LINK_SECRET": "short"},
            "PAYCYCLE_LINK_SECRET: must be set to at least 16",
        ),
    ],
)
def test_serve_refuses_weak_secrets_in_one_line(root, env: dict, needle: str) -> None:  # noqa: ANN001, F811
    assert_one_line_error(paycycle(root, "serve", **env), EXIT_USAGE, needle)


def test_env_example_token_is_refused() -> None:
    """Whoever copies .env.example without editing it gets a service that will not start (its
    token is empty; compose refuses too, with "set PAYCYCLE_API_TOKEN"), and so does whoever
    keeps an old `change-me` placeholder."""
    from serving.credentials import check_api_token
    from tests.conftest import PROJECT_ROOT

    lines = (PROJECT_ROOT / ".env.example").read_text().splitlines()
    value = next(x.split("=", 1)[1] for x in lines if x.startswith("PAYCYCLE_API_TOKEN="))
    with pytest.raises(ConfigError, match="PAYCYCLE_API_TOKEN"):
        check_api_token(value)
    with pytest.raises(ConfigError, match="placeholder"):
        check_api_token("change-me-five-0123456789")
