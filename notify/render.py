"""Notice text: Jinja2 templates per locale, money and dates formatted for the customer.

Templates live in `notify/templates/<locale>/<template>.txt.j2`; the first line is
`Subject: ...`, the rest is the body. The facts (amount, date) are always formatted here from the
notice payload (which comes from the store). An optional generator may rewrite the wording; its
output is accepted only if it still contains the exact amount and date strings and introduces no
number the template text did not have, otherwise the template text is used and the rejection is
reported.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from paycycle.errors import DataError

TEMPLATES_PATH = Path(__file__).resolve().parent / "templates"
LOCALES = ("en", "pt-BR")
DEFAULT_LOCALE = "en"
SYMBOLS = {"USD": "$", "BRL": "R$", "GBP": "£", "EUR": "€", "MXN": "MX$"}
SYMBOLS_PT = {"USD": "US$", "BRL": "R$", "GBP": "£", "EUR": "€", "MXN": "MX$"}
MONTHS = {
    "en": "January February March April May June July August September October November December",
    "pt-BR": "janeiro fevereiro março abril maio junho julho agosto setembro outubro novembro "
    "dezembro",
}
# kind -> (template, payload field holding the notice's key date, whether an amount is required)
KINDS: dict[str, tuple[str, str | None, bool]] = {
    "upcoming_charge": ("upcoming_charge", "charge_date", True),
    "renewal": ("renewal", "renewal_date", True),
    "payment_failed": ("payment_failed", "next_retry_date", True),
    "subscription_at_risk": ("subscription_at_risk", "due_date", True),
    "plan_recommendation": ("plan_recommendation", None, False),
    "retention_offer": ("retention_offer", "expires_at", False),
    "card_expiring": ("card_expiring", "expires_on", False),
    "trial_ending": ("trial_ending", "trial_end", False),
    "scheduled_cancellation": ("scheduled_cancellation", "ends_on", False),
}
# (template body, formatted facts) -> new body, or None to keep the template
Generator = Callable[[str, dict[str, Any]], str | None]
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


class RenderError(DataError):
    """The payload lacks a fact the notice needs, or has it in the wrong form."""


@dataclass(frozen=True)
class Rendered:
    subject: str
    body: str
    facts: dict[str, str]
    generated: bool = False
    rejected: str | None = None  # why the generator's text was not used


def format_money(amount: float, currency: str, locale: str) -> str:
    """`1234.5, "BRL", "pt-BR"` → `R$ 1.234,50`; `1234.5, "USD", "en"` → `$1,234.50`."""
    if not isinstance(amount, int | float) or not math.isfinite(amount):
        raise RenderError(f"amount: not a finite number ({amount!r})")
    sign = "-" if amount < 0 else ""
    text = f"{abs(amount):,.2f}"
    if locale == "pt-BR":
        text = text.replace(",", "\x00").replace(".", ",").replace("\x00", ".")
        return f"{sign}{SYMBOLS_PT.get(currency, currency)} {text}"
    symbol = SYMBOLS.get(currency)
    return f"{sign}{symbol}{text}" if symbol else f"{sign}{currency} {text}"


def format_date(day: dt.date, locale: str) -> str:
    """`2025-03-05` → `March 5, 2025` (en) or `5 de março de 2025` (pt-BR)."""
    months = MONTHS.get(locale, MONTHS["en"]).split()
    if locale == "pt-BR":
        return f"{day.day} de {months[day.month - 1]} de {day.year}"
    return f"{months[day.month - 1]} {day.day}, {day.year}"


def _template_for(kind: str) -> tuple[str, str | None, bool]:
    if kind.startswith("renewal_"):
        return KINDS["renewal"]
    if kind not in KINDS:
        raise RenderError(f"kind: no template for {kind!r}")
    return KINDS[kind]


def _parse_day(payload: dict[str, Any], field: str) -> dt.date:
    value = payload.get(field)
    if value is None:
        raise RenderError(f"{field}: missing from the notice payload")
    if field.endswith("_at"):  # timestamps must carry their timezone
        try:
            stamp = dt.datetime.fromisoformat(str(value))
        except ValueError:
            raise RenderError(f"{field}: not an ISO timestamp ({value!r})") from None
        if stamp.tzinfo is None:
            raise RenderError(f"{field}: timezone-less timestamp {value!r}, expected tz-aware")
        return stamp.astimezone(dt.UTC).date()
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise RenderError(f"{field}: not an ISO date ({value!r})") from None


def facts_for(kind: str, payload: dict[str, Any], locale: str) -> dict[str, str]:
    """The formatted facts a notice must state: `amount` and `date` (when the kind has them).

    Raises:
        RenderError: a fact is missing or malformed (no price, naive timestamp, ...).
    """
    _, date_field, needs_amount = _template_for(kind)
    facts: dict[str, str] = {}
    for key, value in payload.items():
        if key.endswith("_at") and value is not None and key != date_field:
            _parse_day(payload, key)  # every timestamp must be tz-aware, not only the key date
    if needs_amount:
        amount = payload.get("amount")
        if amount is None:
            raise RenderError("amount: missing (no plan price in the store)")
        if not payload.get("currency"):
            raise RenderError("currency: missing")
        facts["amount"] = format_money(float(amount), payload["currency"], locale)
    if date_field:
        facts["date"] = format_date(_parse_day(payload, date_field), locale)
    return facts


@lru_cache(maxsize=1)
def _environment() -> Any:
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    return Environment(
        loader=FileSystemLoader(str(TEMPLATES_PATH)),
        undefined=StrictUndefined,
        autoescape=False,
        keep_trailing_newline=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _check_generated(text: str, template_text: str, facts: dict[str, str]) -> str | None:
    for name, value in facts.items():
        if value not in text:
            return f"generator text lost the {name} {value!r}"
    extra = set(_NUMBER.findall(text)) - set(_NUMBER.findall(template_text))
    if extra:
        return f"generator text introduced number(s) {sorted(extra)} not in the facts"
    return None


def render(
    kind: str,
    locale: str,
    payload: dict[str, Any],
    generator: Generator | None = None,
) -> Rendered:
    """Subject and body of one notice.

    Args:
        kind: notice kind (`renewal_<L>d` kinds share the `renewal` template).
        locale: `pt-BR` or `en` (anything else falls back to `en`).
        payload: the notice payload from the outbox (facts come from the store).
        generator: optional `(template_text, facts) -> text | None` personalisation; its
            output is used only if it keeps the exact amount and date strings (None keeps the
            template; `notify.personalise.lookup_generator` is the model-backed one).

    Returns:
        The rendered text, the formatted facts and whether the generator's text was used.

    Raises:
        RenderError: the payload lacks a required fact.
    """
    locale = locale if locale in LOCALES else DEFAULT_LOCALE
    template, _, _ = _template_for(kind)
    facts = facts_for(kind, payload, locale)
    context = {**payload, **facts, "kind": kind, "locale": locale}
    if kind.startswith("renewal_"):
        context["days_before"] = int(kind.removeprefix("renewal_").removesuffix("d"))
    text = _environment().get_template(f"{locale}/{template}.txt.j2").render(**context).strip()
    subject_line, _, body = text.partition("\n")
    subject = subject_line.removeprefix("Subject:").strip()
    body = body.strip() + "\n"
    missing = [v for v in facts.values() if v not in text]
    if missing:  # a template that drops a fact is a bug, not a runtime choice
        raise RenderError(f"template {locale}/{template}: does not state {missing}")
    if generator is None:
        return Rendered(subject, body, facts)
    try:
        generated = generator(body, dict(facts))
    except Exception as exc:  # a broken generator must not stop delivery
        return Rendered(subject, body, facts, rejected=f"generator failed: {exc!r}")
    if generated is None:  # the generator has no text for this notice: the template it is
        return Rendered(subject, body, facts)
    reason = _check_generated(generated, body, facts)
    if reason:
        return Rendered(subject, body, facts, rejected=reason)
    return Rendered(subject, generated.strip() + "\n", facts, generated=True)
