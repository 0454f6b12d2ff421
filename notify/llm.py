"""An OpenAI-compatible chat-completions client for notice text, and the guard on its answers.

`complete` posts to `<PAYCYCLE_LLM_URL>/v1/chat/completions` (or `/chat/completions` when the URL
already ends in `/v1`, as Ollama's and vLLM's documented base URLs do) with plain httpx. One
notice gets `timeout_seconds` in total: 429, 5xx and connection errors are retried with a doubling
backoff, a `Retry-After` is honoured when it fits in what is left of that budget, and anything
else (timeout, other 4xx, a refusal, a truncated or malformed answer) ends the notice's attempt
with a short reason. The caller then sends the template text.

`check_answer` is the guard a model's text must pass before a customer sees it:

* **length**: at most `max_chars`, and between `min_length_ratio` and `max_length_ratio` times
  the template body;
* **facts**: every formatted fact (amount, date) verbatim, and no number the template lacks;
* **links**: the `[LINK]` placeholder kept as often as the template has links, and no other URL,
  bare domain or email address (the real signed link is put back after the check);
* **locale**: Latin script only (at most 2% other letters), and more of the locale's common
  short words than of the other locale's (a stopword count: `en` vs `pt-BR`). A heuristic, not a
  language model: it catches an answer in the wrong language, not a wrong word.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

    from paycycle.config import LlmParams

LINK = "[LINK]"
_URL_IN_TEMPLATE = re.compile(r"https?://\S+")
_URL = re.compile(
    r"(?:https?://|ftp://|www\.)\S+"
    r"|\b[a-z0-9-]+(?:\.[a-z0-9-]+)*\.(?:com|net|org|io|co|br|app|info|biz|xyz|me|ly|link|"
    r"example|site|online|shop|top)\b(?:/\S*)?",
    re.IGNORECASE,
)
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_THINK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)
# short words frequent in one language and rare in the other (no "a", "no", "do", "as")
# fmt: off
STOPWORDS = {
    "en": frozenset({
        "the", "and", "your", "you", "we", "to", "of", "is", "for", "on", "will", "with", "this",
        "our", "be", "it", "are", "have", "please", "team", "thank", "thanks", "hello", "hi", "at",
        "from", "if", "can", "any",
    }),
    "pt-BR": frozenset({
        "de", "que", "você", "seu", "sua", "seus", "suas", "para", "em", "com", "não", "um", "uma",
        "os", "da", "dos", "das", "pelo", "pela", "será", "é", "olá", "equipe", "obrigado",
        "obrigada", "ao", "nos",
    }),
}
# fmt: on


@dataclass(frozen=True)
class Endpoint:
    """Where to send requests: the chat-completions URL, the model and the optional key."""

    url: str
    model: str
    api_key: str | None = None

    @classmethod
    def from_base(cls, base_url: str, model: str, api_key: str | None = None) -> Endpoint:
        base = base_url.rstrip("/")
        path = "/chat/completions" if base.endswith("/v1") else "/v1/chat/completions"
        return cls(base + path, model, api_key)


@dataclass
class Answer:
    """One notice's exchange with the model: the text, or why there is none."""

    text: str | None
    reason: str | None = None  # "<code>: detail"; code in timeout, rate_limited, ...
    attempts: int = 0
    latency_s: float = 0.0
    usage: dict[str, int] = field(default_factory=dict)
    started_ns: int = 0
    ended_ns: int = 0

    @property
    def code(self) -> str | None:
        """The reason's short code (`timeout`, `guard`, ...), used for counting."""
        return None if self.reason is None else self.reason.split(":", 1)[0]


def retry_after_seconds(value: str | None, now: dt.datetime | None = None) -> float | None:
    """Seconds from a `Retry-After` header (delta-seconds or an HTTP date), None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - (now or dt.datetime.now(dt.UTC))).total_seconds())


def _parse(data: Any) -> tuple[str | None, str | None, dict[str, int]]:
    """(text, reason, usage) from a chat-completions JSON body."""
    try:
        choice = data["choices"][0]
        message = choice["message"]
    except (KeyError, IndexError, TypeError):
        return None, "bad_response: no choices[0].message", {}
    usage: dict[str, int] = {}
    raw_usage = data.get("usage") if isinstance(data, dict) else None
    if isinstance(raw_usage, dict):
        for ours, theirs in (
            ("input_tokens", "prompt_tokens"),
            ("output_tokens", "completion_tokens"),
            ("total_tokens", "total_tokens"),
        ):
            if isinstance(raw_usage.get(theirs), int):
                usage[ours] = raw_usage[theirs]
    if not isinstance(message, dict):
        return None, "bad_response: message is not an object", usage
    if message.get("refusal"):
        return None, f"refusal: {str(message['refusal'])[:200]}", usage
    finish = choice.get("finish_reason") if isinstance(choice, dict) else None
    if finish == "content_filter":
        return None, "refusal: content filter", usage
    if finish == "length":
        return None, "truncated: the answer hit max_tokens", usage
    content = message.get("content")
    if not isinstance(content, str):
        return None, "bad_response: content is not text", usage
    text = _THINK.sub("", content).strip()
    text = text.removeprefix("<draft>").removesuffix("</draft>").strip()
    if not text:
        return None, "refusal: empty answer", usage
    return text, None, usage


async def complete(
    client: httpx.AsyncClient,
    endpoint: Endpoint,
    messages: list[dict[str, str]],
    params: LlmParams,
) -> Answer:
    """Ask the model once (with retries) within `params.timeout_seconds`; never raises.

    Args:
        client: a shared async client (connection pooling); its own timeouts are not relied on.
        endpoint: chat-completions URL, model and key.
        messages: the chat messages (system, user).
        params: `notify.llm` (timeout, retries, backoff, temperature, max_tokens).

    Returns:
        The answer's text, or None with the reason (the caller falls back to the template).
    """
    import httpx

    headers = {"Content-Type": "application/json"}
    if endpoint.api_key:
        headers["Authorization"] = f"Bearer {endpoint.api_key}"
    body = {
        "model": endpoint.model,
        "messages": messages,
        "temperature": params.temperature,
        "max_tokens": params.max_tokens,
        "stream": False,
    }
    answer = Answer(None, started_ns=time.time_ns())
    start = time.monotonic()
    deadline = start + params.timeout_seconds
    while True:
        answer.attempts += 1
        remaining = deadline - time.monotonic()
        retry_after: float | None = None
        try:
            async with asyncio.timeout(remaining):
                resp = await client.post(endpoint.url, json=body, headers=headers)
        except (TimeoutError, httpx.TimeoutException):
            answer.reason = f"timeout: no answer within {params.timeout_seconds:g}s"
            break
        except httpx.TransportError as exc:
            answer.reason = f"connect_error: {exc.__class__.__name__}"
        else:
            if resp.status_code == 429:
                answer.reason = "rate_limited: HTTP 429"
                retry_after = retry_after_seconds(resp.headers.get("Retry-After"))
            elif resp.status_code >= 500:
                answer.reason = f"server_error: HTTP {resp.status_code}"
                retry_after = retry_after_seconds(resp.headers.get("Retry-After"))
            elif not resp.is_success:
                answer.reason = f"http_error: HTTP {resp.status_code}"
                break
            else:
                try:
                    data = resp.json()
                except ValueError:
                    answer.reason = "bad_response: not JSON"
                    break
                answer.text, answer.reason, answer.usage = _parse(data)
                break
        if answer.attempts > params.retries:
            answer.reason = f"{answer.reason} after {answer.attempts} attempts"
            break
        delay = (
            retry_after
            if retry_after is not None
            else params.backoff_seconds * 2 ** (answer.attempts - 1)
        )
        if delay >= deadline - time.monotonic():
            answer.reason = f"{answer.reason}; the retry would pass the {params.timeout_seconds:g}s"
            break
        await asyncio.sleep(delay)
    answer.latency_s = time.monotonic() - start
    answer.ended_ns = time.time_ns()
    return answer


def to_placeholders(text: str) -> str:
    """The template text with each URL (the signed self-serve link) replaced by `[LINK]`."""
    return _URL_IN_TEMPLATE.sub(LINK, text)


def from_placeholders(text: str, template_text: str) -> str:
    """Put the template's URLs back in place of the `[LINK]` placeholders, in order."""
    for url in _URL_IN_TEMPLATE.findall(template_text):
        text = text.replace(LINK, url, 1)
    return text


def _locale_verdict(text: str, locale: str) -> str | None:
    letters = "".join(_WORD.findall(text))
    if letters:
        foreign = sum(1 for ch in letters if ord(ch) > 0x24F)  # beyond Latin Extended-B
        if foreign / len(letters) > 0.02:
            return f"guard: wrong_locale: {foreign} non-Latin letters"
    words = [w.lower() for w in _WORD.findall(text)]
    own = STOPWORDS.get(locale, STOPWORDS["en"])
    other = STOPWORDS["pt-BR"] if own is STOPWORDS["en"] else STOPWORDS["en"]
    hits_own = sum(w in own for w in words)
    hits_other = sum(w in other for w in words)
    if hits_own <= hits_other:
        return f"guard: wrong_locale: {hits_own} {locale} vs {hits_other} other common words"
    return None


def check_answer(
    text: str, draft: str, facts: dict[str, str], locale: str, params: LlmParams
) -> str | None:
    """Why the model's `text` must not replace the template `draft`, or None if it may.

    Args:
        text: the model's body, links still as `[LINK]`.
        draft: the template body sent to the model, links as `[LINK]`.
        facts: the formatted facts the notice must state verbatim (`amount`, `date`).
        locale: the notice's locale (`en`, `pt-BR`).
        params: `notify.llm` (length limits).

    Returns:
        `"guard: <check>: detail"` for the first check that fails, else None.
    """
    n = len(text)
    if n > params.max_chars or n > params.max_length_ratio * len(draft):
        return f"guard: too_long: {n} characters (template {len(draft)})"
    if n < params.min_length_ratio * len(draft):
        return f"guard: too_short: {n} characters (template {len(draft)})"
    for name, value in facts.items():
        if value not in text:
            return f"guard: lost_fact: the {name} {value!r}"
    if text.count(LINK) != draft.count(LINK):
        return f"guard: lost_link: {text.count(LINK)} link(s), the template has {draft.count(LINK)}"
    rest = text.replace(LINK, " ")
    url = _URL.search(rest) or _EMAIL.search(rest)
    if url:
        return f"guard: foreign_url: {url.group(0)[:80]!r}"
    extra = set(_NUMBER.findall(rest)) - set(_NUMBER.findall(draft.replace(LINK, " ")))
    if extra:
        return f"guard: new_number: {sorted(extra)[:5]}"
    return _locale_verdict(text, locale)
