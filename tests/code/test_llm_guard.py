"""The guard on model-written notice text, the chat-completions answer parser, Retry-After, the
endpoint URL, the lookup generator and the PAYCYCLE_LLM_* settings."""

from __future__ import annotations

import datetime as dt

import pytest

from notify.llm import (
    LINK,
    Endpoint,
    _parse,
    check_answer,
    from_placeholders,
    retry_after_seconds,
    to_placeholders,
)
from notify.personalise import _lookup_key, lookup_generator
from notify.render import render
from paycycle import config
from paycycle.config import LlmParams
from paycycle.errors import ConfigError

P = LlmParams()
FACTS = {"amount": "$49.00", "date": "March 5, 2025"}
DRAFT = (
    "Hello,\n\nOn March 5, 2025 we will charge $49.00 for your PayCycle pro plan.\n"
    f"Update your payment method: {LINK}\n\nThe PayCycle team\n"
)
GOOD = (
    "Hello,\n\nThank you for being with us. On March 5, 2025 we will charge $49.00 for your "
    f"PayCycle pro plan.\nUpdate your payment method: {LINK}\n\nThe PayCycle team\n"
)
PT_FACTS = {"amount": "R$ 49,00", "date": "5 de março de 2025"}
PT_DRAFT = (
    "Olá,\n\nEm 5 de março de 2025 cobraremos R$ 49,00 pelo seu plano PayCycle pro.\n\n"
    "Equipe PayCycle\n"
)


def test_a_faithful_rewrite_passes() -> None:
    assert check_answer(GOOD, DRAFT, FACTS, "en", P) is None
    pt = PT_DRAFT.replace("Olá,", "Olá, que bom ter você com a gente!")
    assert check_answer(pt, PT_DRAFT, PT_FACTS, "pt-BR", P) is None


@pytest.mark.parametrize(
    ("text", "check"),
    [
        (GOOD.replace("$49.00", "$ 49"), "lost_fact"),
        (GOOD.replace("March 5, 2025", "soon"), "lost_fact"),
        (GOOD.replace(LINK, "your account page"), "lost_link"),
        (GOOD + "Or pay at http://evil.example/pay", "foreign_url"),
        (GOOD + "Or pay at www.paycycle-billing.com", "foreign_url"),
        (GOOD + "Or pay at paycycle-billing.com/pay", "foreign_url"),
        (GOOD + "Questions? billing@evil.com", "foreign_url"),
        (GOOD.replace("Thank you", "Get 20% off, thank you"), "new_number"),
        (GOOD + "Call 0800 123 456.", "new_number"),
        (GOOD + "x" * 2000, "too_long"),
        ("On March 5, 2025: $49.00.", "too_short"),
        (
            GOOD.replace("Thank you for being with us.", "Спасибо, что вы с нами, дорогой клиент."),
            "wrong_locale",
        ),  # fmt: skip
        (
            "Olá,\n\nEm March 5, 2025 cobraremos $49.00 pelo seu plano PayCycle pro. "
            f"Atualize: {LINK}\n\nEquipe PayCycle, obrigado por ser nosso cliente\n",
            "wrong_locale",
        ),
    ],
)
def test_a_guard_check_refuses_the_answer(text: str, check: str) -> None:
    reason = check_answer(text, DRAFT, FACTS, "en", P)
    assert reason is not None and reason.startswith(f"guard: {check}:"), reason


def test_an_english_answer_to_a_portuguese_notice_is_refused() -> None:
    en = "Hello,\n\nOn 5 de março de 2025 we will charge R$ 49,00 for your PayCycle pro plan.\n"
    reason = check_answer(en + "Thank you, the PayCycle team\n", PT_DRAFT, PT_FACTS, "pt-BR", P)
    assert reason is not None and reason.startswith("guard: wrong_locale:")


@pytest.mark.parametrize(
    ("data", "text", "code"),
    [
        ({"choices": [{"message": {"content": "Hi"}, "finish_reason": "stop"}]}, "Hi", None),
        ({"choices": [{"message": {"content": "<think>hmm</think>\nHi"}}]}, "Hi", None),
        ({"choices": [{"message": {"content": "<draft>\nHi\n</draft>"}}]}, "Hi", None),
        ({"choices": [{"message": {"content": None, "refusal": "no"}}]}, None, "refusal"),
        (
            {"choices": [{"message": {"content": "Hi"}, "finish_reason": "length"}]},
            None,
            "truncated",
        ),  # fmt: skip
        (
            {"choices": [{"message": {"content": "x"}, "finish_reason": "content_filter"}]},
            None,
            "refusal",
        ),  # fmt: skip
        ({"choices": [{"message": {"content": "   "}}]}, None, "refusal"),
        ({"choices": []}, None, "bad_response"),
        ({"error": "x"}, None, "bad_response"),
        ([1, 2], None, "bad_response"),
    ],
)
def test_chat_completion_answers_are_parsed(data, text, code) -> None:
    got, reason, _ = _parse(data)
    assert got == text
    assert (reason.split(":", 1)[0] if reason else None) == code


def test_token_usage_is_read_when_reported() -> None:
    data = {
        "choices": [{"message": {"content": "Hi"}}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }
    assert _parse(data)[2] == {"input_tokens": 10, "output_tokens": 5, "total_tokens": 15}


def test_retry_after_takes_seconds_or_an_http_date() -> None:
    now = dt.datetime(2025, 1, 1, 12, 0, tzinfo=dt.UTC)
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds("Wed, 01 Jan 2025 12:00:30 GMT", now) == 30.0
    assert retry_after_seconds("Wed, 01 Jan 2025 11:00:00 GMT", now) == 0.0
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None


@pytest.mark.parametrize(
    ("base", "url"),
    [
        ("http://127.0.0.1:11434", "http://127.0.0.1:11434/v1/chat/completions"),
        ("http://127.0.0.1:11434/v1", "http://127.0.0.1:11434/v1/chat/completions"),
        ("http://127.0.0.1:8000/v1/", "http://127.0.0.1:8000/v1/chat/completions"),
    ],
)
def test_the_endpoint_accepts_a_base_url_with_or_without_v1(base: str, url: str) -> None:
    assert Endpoint.from_base(base, "m").url == url


def test_links_travel_as_placeholders_and_come_back() -> None:
    template = "Pay here: https://billing.paycycle.example/payment-method?token=abc.def\nBye"
    sent = to_placeholders(template)
    assert sent == f"Pay here: {LINK}\nBye"
    assert from_placeholders(f"Please pay: {LINK}", template) == (
        "Please pay: https://billing.paycycle.example/payment-method?token=abc.def"
    )


def test_the_lookup_generator_keeps_the_template_without_a_text() -> None:
    payload = {"amount": 49.0, "currency": "USD", "charge_date": "2025-03-05", "plan": "pro"}
    plain = render("upcoming_charge", "en", payload)
    nothing = render("upcoming_charge", "en", payload, generator=lookup_generator({}))
    assert nothing == plain and not nothing.generated and nothing.rejected is None
    texts = {_lookup_key(to_placeholders(plain.body), plain.facts): plain.body + "Thanks!\n"}
    out = render("upcoming_charge", "en", payload, generator=lookup_generator(texts))
    assert out.generated and out.body.endswith("Thanks!\n")


def test_llm_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.delenv("PAYCYCLE_LLM_URL", raising=False)
    assert not config.load(root=tmp_path).llm_enabled
    monkeypatch.setenv("PAYCYCLE_LLM_URL", "http://127.0.0.1:11434/v1/")
    monkeypatch.setenv("PAYCYCLE_LLM_MODEL", "llama3.2:3b")
    monkeypatch.setenv("PAYCYCLE_LLM_API_KEY", "sk-secret-value")
    s = config.load(root=tmp_path)
    assert s.llm_enabled and s.llm_url == "http://127.0.0.1:11434/v1"
    assert "sk-secret-value" not in repr(s)


@pytest.mark.parametrize(
    "bad", ["ftp://user:hunter2@host/v1", "hunter2@127.0.0.1:11434", "http://"]
)
def test_a_bad_llm_url_is_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path, bad: str
) -> None:
    monkeypatch.setenv("PAYCYCLE_LLM_URL", bad)
    with pytest.raises(ConfigError, match=r"^PAYCYCLE_LLM_URL: .*http\(s\) URL") as err:
        config.load(root=tmp_path)
    assert "hunter2" not in str(err.value)  # a URL may carry credentials: never echoed


def test_an_unknown_kind_switch_is_refused(tmp_path) -> None:
    (tmp_path / "params.yaml").write_text("notify:\n  llm:\n    kinds:\n      invoice_poem: true\n")
    with pytest.raises(ConfigError, match=r"notify\.llm\.kinds: .*invoice_poem"):
        config.load(root=tmp_path)
