"""Notice rendering: locales, money and dates, facts always present, generator guarded."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notify.render import RenderError, format_date, format_money, render

CHARGE = {"amount": 1234.5, "currency": "BRL", "charge_date": "2025-03-05", "plan": "pro"}


@pytest.mark.parametrize(
    ("amount", "currency", "locale", "text"),
    [
        (1234.5, "BRL", "pt-BR", "R$ 1.234,50"),
        (1234.5, "USD", "en", "$1,234.50"),
        (95.0, "GBP", "en", "£95.00"),
        (1000000.0, "EUR", "en", "€1,000,000.00"),
        (17.0, "MXN", "en", "MX$17.00"),
        (49.9, "USD", "pt-BR", "US$ 49,90"),
    ],
)
def test_money_is_formatted_for_currency_and_locale(amount, currency, locale, text) -> None:
    assert format_money(amount, currency, locale) == text


def test_dates_are_localised() -> None:
    day = dt.date(2025, 3, 5)
    assert format_date(day, "en") == "March 5, 2025"
    assert format_date(day, "pt-BR") == "5 de março de 2025"


@pytest.mark.parametrize(
    ("locale", "amount", "date", "word"),
    [
        ("pt-BR", "R$ 1.234,50", "5 de março de 2025", "cobraremos"),
        ("en", "R$1,234.50", "March 5, 2025", "charge"),
    ],
)
def test_upcoming_charge_states_the_store_facts(locale, amount, date, word) -> None:
    out = render("upcoming_charge", locale, CHARGE)
    assert amount in out.body and date in out.body and word in out.body
    assert out.facts == {"amount": amount, "date": date}


@pytest.mark.parametrize(
    ("kind", "payload"),
    [
        (
            "renewal_30d",
            {"amount": 990.0, "currency": "USD", "renewal_date": "2025-04-01", "plan": "pro"},
        ),
        (
            "payment_failed",
            {
                "amount": 49.0,
                "currency": "USD",
                "next_retry_date": "2025-01-04",
                "due_date": "2025-01-03",
            },
        ),
        ("subscription_at_risk", {"amount": 49.0, "currency": "USD", "due_date": "2025-01-03"}),
        ("plan_recommendation", {"item": "plan:growth"}),
        (
            "retention_offer",
            {"offer_type": "free_month", "expires_at": "2025-02-01T00:00:00+00:00"},
        ),
    ],
)
@pytest.mark.parametrize("locale", ["en", "pt-BR"])
def test_every_kind_renders_in_both_locales(kind, payload, locale) -> None:
    out = render(kind, locale, payload)
    assert out.subject and out.body.strip()
    for fact in out.facts.values():
        assert fact in out.body


def test_unknown_locale_falls_back_to_english() -> None:
    assert "March 5, 2025" in render("upcoming_charge", "fr", CHARGE).body


@pytest.mark.parametrize(
    ("kind", "payload", "field"),
    [
        ("upcoming_charge", {**CHARGE, "amount": None}, "amount"),
        ("upcoming_charge", {k: v for k, v in CHARGE.items() if k != "charge_date"}, "charge_date"),
        (
            "retention_offer",
            {"offer_type": "free_month", "expires_at": "2025-02-01T00:00:00"},
            "timezone",
        ),
    ],
)
def test_missing_or_naive_facts_are_rejected(kind, payload, field) -> None:
    with pytest.raises(RenderError, match=field):
        render(kind, "en", payload)


def test_generator_output_is_used_when_it_keeps_the_facts() -> None:
    def friendly(text: str, facts: dict[str, str]) -> str:
        return f"Hi there! Heads up: {facts['amount']} will be charged on {facts['date']}."

    out = render("upcoming_charge", "en", CHARGE, generator=friendly)
    assert out.generated and out.body.startswith("Hi there!") and out.rejected is None


@pytest.mark.parametrize(
    ("generator", "reason"),
    [
        (lambda text, facts: text.replace("R$1,234.50", "R$1,243.50"), "amount"),
        (lambda text, facts: text.replace("March 5", "March 6"), "date"),
        (lambda text, facts: text + "\nOnly 2 days left, save 15%!", "number"),
        (lambda text, facts: 1 / 0, "failed"),
    ],
)
def test_generator_changing_facts_is_rejected(generator, reason) -> None:
    out = render("upcoming_charge", "en", CHARGE, generator=generator)
    assert not out.generated and reason in out.rejected
    assert "R$1,234.50" in out.body and "March 5, 2025" in out.body  # template text kept


@given(
    amount=st.floats(min_value=0.01, max_value=1e7, allow_nan=False),
    currency=st.sampled_from(["BRL", "USD", "GBP", "EUR", "MXN"]),
    locale=st.sampled_from(["en", "pt-BR"]),
)
def test_rendered_amount_round_trips(amount: float, currency: str, locale: str) -> None:
    text = format_money(round(amount, 2), currency, locale)
    digits = text.split()[-1] if locale == "pt-BR" else text.lstrip("R$£€MXUS")
    if locale == "pt-BR":
        digits = digits.replace(".", "").replace(",", ".")
    else:
        digits = digits.replace(",", "")
    assert float(digits) == pytest.approx(round(amount, 2))
