"""Personalised notice text: prompts in MLflow's registry, one trace per model call, a cache in
the store, and a lookup generator for `notify.outbox.deliver`.

Before a delivery run sends anything, `make_generator` takes the notices due on the channel,
renders each one's template, and asks the model (`notify.llm`) to rewrite the bodies it has not
rewritten before. What is sent: the notice kind, locale, the formatted facts (amount, date) and
the template body with its signed link replaced by `[LINK]`: no customer id, email, name, card
or link token. Calls run concurrently (`max_concurrency`), at most `max_calls_per_run` of them,
each within `timeout_seconds` and all within `run_timeout_seconds`, so a slow or dead server
delays a run by a bounded time and never loses a notice: whatever has no accepted text is sent
with its template text.

* **Prompts** by alias from MLflow's registry, **traces** per call: `notify/genai_mlflow.py`.
* **Cache** (`generated_texts`, keyed by a hash of prompt name and version, model, kind, locale,
  facts and body sent; guard rejections cached too, transient failures not, so the next run asks
  again) and **record** (`notice_texts`: each notice's text source and fallback reason):
  `notify/text_store.py`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hashlib
import json
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from notify.genai_mlflow import experiment_id, load_prompts, trace_call, use_tracking_uri
from notify.links import LINKS_FIELD
from notify.llm import (
    LINK,
    Answer,
    Endpoint,
    check_answer,
    complete,
    from_placeholders,
    to_placeholders,
)
from notify.render import Generator, RenderError, render
from notify.text_store import cached_texts, complete_records, due_rows, upsert
from paycycle.store import GeneratedText, NoticeText

if TYPE_CHECKING:
    from collections.abc import Coroutine

    from sqlalchemy import Engine

    from paycycle.config import LlmParams, Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Draft:
    """One notice as the model sees it (links as `[LINK]`)."""

    dedup_key: str
    kind: str  # the template's kind (`renewal_30d` → `renewal`)
    locale: str
    body: str
    facts: dict[str, str]

    @property
    def lookup(self) -> str:
        return _lookup_key(self.body, self.facts)


@dataclass
class GenerationStats:
    """What one generation step did; `fallbacks` counts template texts by reason code."""

    notices: int = 0  # due notices looked at
    eligible: int = 0  # of those, kinds switched on with a renderable template
    calls: int = 0
    generated: int = 0  # notices given a model text from this run's calls
    cached: int = 0  # notices given a model text from the cache
    fallbacks: dict[str, int] = field(default_factory=dict)

    @property
    def fallback_rate(self) -> float:
        """Share of eligible notices sent with their template text."""
        return sum(self.fallbacks.values()) / self.eligible if self.eligible else 0.0


def _lookup_key(body: str, facts: dict[str, str]) -> str:
    return body + "\x00" + json.dumps(facts, sort_keys=True, ensure_ascii=False)


def base_kind(kind: str) -> str:
    """The template kind of a notice kind (`renewal_30d` → `renewal`)."""
    return "renewal" if kind.startswith("renewal_") else kind


def draft_for(row: dict[str, Any]) -> Draft | None:
    """The notice's template body and facts, or None when it cannot render (the outbox will
    dead-letter it with the reason)."""
    payload = dict(row["payload"] or {})
    for url_field in payload.pop(LINKS_FIELD, None) or {}:  # links are signed at send time
        payload[str(url_field)] = LINK
    try:
        text = render(row["kind"], row["locale"], payload)
    except RenderError:
        return None
    locale = row["locale"] if row["locale"] in ("en", "pt-BR") else "en"
    return Draft(
        row["dedup_key"], base_kind(row["kind"]), locale, to_placeholders(text.body), text.facts
    )


def cache_key(prompt: Any, model: str, draft: Draft) -> str:
    """sha256 of everything that decides the model's answer."""
    blob = json.dumps(
        [
            prompt.name,
            str(prompt.version),
            model,
            draft.kind,
            draft.locale,
            draft.body,
            draft.facts,
        ],
        sort_keys=True,
        ensure_ascii=False,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def _messages(prompt: Any, draft: Draft, params: LlmParams) -> list[dict[str, str]]:
    return prompt.format(
        kind=draft.kind,
        locale=draft.locale,
        facts=json.dumps(draft.facts, ensure_ascii=False),
        draft=draft.body.strip(),
        max_chars=str(params.max_chars),
    )


@dataclass
class _Job:
    key: str
    draft: Draft
    prompt: Any


async def _generate(
    jobs: list[_Job], endpoint: Endpoint, params: LlmParams
) -> dict[str, tuple[list[dict[str, str]], Answer]]:
    """Ask for every job concurrently; returns cache key → (messages, guarded answer).

    Nothing blocking runs on the loop (tracing happens afterwards, with the recorded times), so
    one call's bookkeeping never eats another's timeout.
    """
    import httpx

    semaphore = asyncio.Semaphore(params.max_concurrency)
    out: dict[str, tuple[list[dict[str, str]], Answer]] = {}
    limits = httpx.Limits(max_connections=params.max_concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=params.timeout_seconds) as client:

        async def one(job: _Job) -> None:
            messages = _messages(job.prompt, job.draft, params)
            async with semaphore:
                answer = await complete(client, endpoint, messages, params)
            if answer.text is not None:
                answer.reason = check_answer(
                    answer.text, job.draft.body, job.draft.facts, job.draft.locale, params
                )
                if answer.reason:
                    answer.text = None
            out[job.key] = (messages, answer)

        tasks = [asyncio.ensure_future(one(job)) for job in jobs]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=params.run_timeout_seconds)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
    return out


def _run(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine from sync code, also when the caller already runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _select(
    rows: list[dict[str, Any]], params: LlmParams
) -> tuple[list[Draft], list[dict[str, Any]]]:
    """Drafts of the rows whose kind is switched on, and records for those switched off."""
    drafts: list[Draft] = []
    records: list[dict[str, Any]] = []
    for row in rows:
        if not params.kinds.get(base_kind(row["kind"]), False):
            off = {"dedup_key": row["dedup_key"], "source": "template"}
            records.append({**off, "reason": "off: kind switched off"})
            continue
        draft = draft_for(row)
        if draft is not None:
            drafts.append(draft)
    return drafts, records


def _ask(
    jobs: list[_Job], endpoint: Endpoint, params: LlmParams
) -> dict[str, tuple[Answer, str | None]]:
    """Cache key → (guarded answer, trace id) for each job that finished in time."""
    if not jobs:
        return {}
    exp = experiment_id(params.experiment)
    by_key = {j.key: j for j in jobs}
    answers = {}
    for key, (messages, a) in _run(_generate(jobs, endpoint, params)).items():
        job = by_key[key]
        trace = trace_call(
            exp, job.prompt, endpoint.model, job.draft.kind, job.draft.locale, messages, a
        )
        answers[key] = (a, trace)
    return answers


def _cache_rows(
    answers: dict[str, tuple[Answer, str | None]], jobs: dict[str, _Job], model: str
) -> list[dict[str, Any]]:
    """`generated_texts` rows: accepted texts and guard rejections (not transient failures)."""
    return [
        {
            "cache_key": k,
            "prompt": f"{jobs[k].prompt.name}/{jobs[k].prompt.version}",
            "model": model,
            "kind": jobs[k].draft.kind,
            "locale": jobs[k].draft.locale,
            "text": a.text,
            "reason": a.reason,
            "trace_id": trace,
        }
        for k, (a, trace) in answers.items()
        if a.text is not None or a.code == "guard"
    ]


def personalise(
    engine: Engine, settings: Settings, rows: list[dict[str, Any]]
) -> tuple[dict[str, str], GenerationStats]:
    """Model texts for the given outbox rows, with every notice's source recorded.

    Args:
        engine: the store (cache and `notice_texts`).
        settings: `PAYCYCLE_LLM_*`, `notify.llm` params and the MLflow tracking URI.
        rows: outbox rows with `dedup_key`, `kind`, `locale`, `payload`.

    Returns:
        Lookup key (template body with `[LINK]` + facts) → accepted text, and the step's counts.
    """
    params = settings.params.notify.llm
    model = settings.llm_model or ""
    secret = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
    endpoint = Endpoint.from_base(settings.llm_url or "", model, secret)
    stats = GenerationStats(notices=len(rows))
    drafts, records = _select(rows, params)
    stats.eligible = len(drafts)
    texts: dict[str, str] = {}
    if drafts:
        use_tracking_uri(settings.tracking_uri)
        prompts = load_prompts({(d.kind, d.locale) for d in drafts}, params)
        keyed = [(cache_key(prompts[(d.kind, d.locale)], model, d), d) for d in drafts]
        cached = cached_texts(engine, sorted({k for k, _ in keyed}))
        jobs: dict[str, _Job] = {}
        for key, d in keyed:
            if key not in cached and key not in jobs:
                jobs[key] = _Job(key, d, prompts[(d.kind, d.locale)])
        todo = list(jobs.values())[: params.max_calls_per_run]
        answers = _ask(todo, endpoint, params)
        stats.calls = len(answers)
        upsert(engine, GeneratedText, _cache_rows(answers, jobs, model), update=False)
        asked = {job.key for job in todo}
        for key, d in keyed:
            if key in cached:
                text, reason = cached[key]
                source = "cache"
            elif key in answers:
                text, reason = answers[key][0].text, answers[key][0].reason
                source = "model"
            elif key in asked:
                text, reason = None, f"deadline: no answer within {params.run_timeout_seconds:g}s"
            else:
                text, reason = None, f"budget: over max_calls_per_run={params.max_calls_per_run}"
            if text is None:
                source = "template"
                code = (reason or "unknown").split(":", 1)[0]
                stats.fallbacks[code] = stats.fallbacks.get(code, 0) + 1
            else:
                texts[d.lookup] = text
                stats.generated += source == "model"
                stats.cached += source == "cache"
            prompt = prompts[(d.kind, d.locale)]
            records.append(
                {
                    "dedup_key": d.dedup_key,
                    "source": source,
                    "reason": reason,
                    "prompt": f"{prompt.name}/{prompt.version}",
                    "model": model,
                    "cache_key": key,
                }
            )
    upsert(engine, NoticeText, complete_records(records), update=True)
    if stats.fallbacks:
        log.warning(
            "notice text: %d template fallback(s) %s",
            sum(stats.fallbacks.values()),
            dict(stats.fallbacks),
        )
    return texts, stats


def lookup_generator(texts: dict[str, str]) -> Generator:
    """A `notify.render` generator that answers from `personalise`'s texts (no network):
    None (the template) for a notice without one, its signed link put back otherwise."""

    def generate(template_text: str, facts: dict[str, str]) -> str | None:
        text = texts.get(_lookup_key(to_placeholders(template_text), facts))
        return None if text is None else from_placeholders(text, template_text)

    return generate


def make_generator(
    engine: Engine, settings: Settings, channel: str
) -> tuple[Generator | None, GenerationStats | None]:
    """Generate texts for the channel's due notices; (None, None) when no model is configured."""
    if not settings.llm_enabled:
        return None, None
    rows = due_rows(engine, channel)
    try:
        texts, stats = personalise(engine, settings, rows)
    except Exception as exc:  # noqa: BLE001 - the registry or store hiccuped: templates for all
        log.warning("notice text: generation step failed, templates used: %r", exc)
        reason = f"error: {exc.__class__.__name__}: {str(exc)[:300]}"
        records = [
            {"dedup_key": r["dedup_key"], "source": "template", "reason": reason} for r in rows
        ]
        with contextlib.suppress(Exception):  # the store may be what failed
            upsert(engine, NoticeText, complete_records(records), update=True)
        return None, GenerationStats(notices=len(rows), fallbacks={"error": len(rows)})
    return lookup_generator(texts), stats
