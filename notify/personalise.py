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

* **Prompts**: `<prompt_prefix>.<kind>.<locale>` in the MLflow prompt registry, loaded by the
  alias `prompt_alias`; a missing prompt is registered from `notify/prompts/<locale>/<kind>.yaml`
  and given the alias, so a data scientist can publish a new version and move the alias.
* **Traces**: every call is a trace in the experiment `notify.llm.experiment` (span type LLM)
  with the prompt name and version, model, latency, token usage when the server reports it,
  attempts and the guard verdict (tag `verdict`: `accepted` or the reason's code).
* **Cache**: `generated_texts`, keyed by a hash of (prompt name and version, model, kind,
  locale, facts and template body sent); guard rejections are cached too (text NULL), transient
  failures are not, so the next run asks again.
* **Record**: `notice_texts` holds, per dedup key, the text's source (`model`, `cache`,
  `template`) and the reason the template was used.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hashlib
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from notify.llm import Answer, Endpoint, check_answer, complete, from_placeholders, to_placeholders
from notify.render import Generator, RenderError, render
from paycycle.store import GeneratedText, NoticeText

if TYPE_CHECKING:
    from collections.abc import Coroutine

    from sqlalchemy import Engine

    from paycycle.config import LlmParams, Settings

log = logging.getLogger(__name__)
PROMPTS_PATH = Path(__file__).resolve().parent / "prompts"
_CHUNK = 1_000


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
    try:
        text = render(row["kind"], row["locale"], row["payload"] or {})
    except RenderError:
        return None
    locale = row["locale"] if row["locale"] in ("en", "pt-BR") else "en"
    return Draft(
        row["dedup_key"], base_kind(row["kind"]), locale, to_placeholders(text.body), text.facts
    )


def default_prompt(kind: str, locale: str) -> list[dict[str, str]]:
    """The chat template kept in git for `kind` and `locale` (`notify/prompts/`)."""
    import yaml

    data = yaml.safe_load((PROMPTS_PATH / locale / f"{kind}.yaml").read_text())
    return [
        {"role": "system", "content": data["system"].strip()},
        {"role": "user", "content": data["user"].strip()},
    ]


def load_prompts(pairs: set[tuple[str, str]], params: LlmParams) -> dict[tuple[str, str], Any]:
    """The registered prompt version for each (kind, locale), by alias; registers the git
    default (and sets the alias) for a prompt the registry does not have yet."""
    import mlflow.genai

    out = {}
    for kind, locale in sorted(pairs):
        name = f"{params.prompt_prefix}.{kind}.{locale}"
        uri = f"prompts:/{name}@{params.prompt_alias}"
        try:
            prompt = mlflow.genai.load_prompt(uri, allow_missing=True)
        except Exception:  # noqa: BLE001 - MLflow raises its own types when the alias is unset
            prompt = None
        if prompt is None:
            prompt = mlflow.genai.register_prompt(
                name,
                default_prompt(kind, locale),
                commit_message="PayCycle default from notify/prompts",
                tags={"kind": kind, "locale": locale, "source": "notify/prompts"},
            )
            mlflow.genai.set_prompt_alias(name, params.prompt_alias, prompt.version)
        out[(kind, locale)] = prompt
    return out


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


def _trace(
    experiment_id: str,
    prompt: Any,
    model: str,
    draft: Draft,
    messages: Any,
    a: Answer,
) -> str | None:
    """Log one call as an MLflow trace; tracing trouble never stops a notice."""
    import mlflow
    from mlflow.tracing.constant import SpanAttributeKey

    verdict = a.code or "accepted"
    try:
        span = mlflow.start_span_no_context(
            "notice.generate",
            span_type="LLM",
            inputs={"messages": messages, "model": model},
            attributes={
                "prompt.name": prompt.name,
                "prompt.version": str(prompt.version),
                "model": model,
                "kind": draft.kind,
                "locale": draft.locale,
            },
            tags={"verdict": verdict, "kind": draft.kind, "prompt_version": str(prompt.version)},
            experiment_id=experiment_id,
            start_time_ns=a.started_ns,
        )
        with contextlib.suppress(Exception):
            from mlflow.tracing.trace_manager import InMemoryTraceManager

            InMemoryTraceManager.get_instance().register_prompt(span.trace_id, prompt)
        attributes: dict[str, Any] = {
            "latency_ms": round(a.latency_s * 1000, 1),
            "attempts": a.attempts,
            "guard.verdict": verdict,
            "reason": a.reason or "",
        }
        if a.usage:
            attributes[SpanAttributeKey.CHAT_USAGE] = a.usage
        span.end(
            outputs={"text": a.text},
            attributes=attributes,
            status="OK" if verdict == "accepted" else "ERROR",
            end_time_ns=a.ended_ns,
        )
        return span.trace_id
    except Exception as exc:  # noqa: BLE001 - a tracking outage must not block delivery
        log.warning("notice trace not logged: %s", exc)
        return None


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


def _upsert(engine: Engine, model: Any, rows: list[dict[str, Any]], update: bool) -> None:
    if not rows:
        return
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    table = model.__table__
    key = [c.name for c in table.primary_key.columns]
    with engine.begin() as conn:
        for i in range(0, len(rows), _CHUNK):
            stmt = insert(table)
            if update:
                cols = {c: stmt.excluded[c] for c in rows[0] if c not in key}
                stmt = stmt.on_conflict_do_update(index_elements=key, set_=cols)
            else:
                stmt = stmt.on_conflict_do_nothing(index_elements=key)
            conn.execute(stmt, rows[i : i + _CHUNK])


def _cached(engine: Engine, keys: list[str]) -> dict[str, tuple[str | None, str | None]]:
    c = GeneratedText.__table__.c
    out = {}
    with engine.connect() as conn:
        for i in range(0, len(keys), _CHUNK):
            stmt = select(c.cache_key, c.text, c.reason).where(
                c.cache_key.in_(keys[i : i + _CHUNK])
            )
            out.update({k: (t, r) for k, t, r in conn.execute(stmt)})
    return out


def _experiment_id(name: str) -> str:
    from mlflow import MlflowClient

    client = MlflowClient()
    found = client.get_experiment_by_name(name)
    return found.experiment_id if found is not None else client.create_experiment(name)


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
    import mlflow

    params = settings.params.notify.llm
    model = settings.llm_model or ""
    key_secret = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
    endpoint = Endpoint.from_base(settings.llm_url or "", model, key_secret)
    stats = GenerationStats(notices=len(rows))
    records: list[dict[str, Any]] = []
    drafts: list[Draft] = []
    for row in rows:
        kind = base_kind(row["kind"])
        if not params.kinds.get(kind, False):
            records.append(
                {
                    "dedup_key": row["dedup_key"],
                    "source": "template",
                    "reason": "off: kind switched off",
                }
            )
            continue
        draft = draft_for(row)
        if draft is not None:
            drafts.append(draft)
    stats.eligible = len(drafts)
    texts: dict[str, str] = {}
    if drafts:
        if mlflow.get_tracking_uri() != settings.tracking_uri:
            # traces still queued for the previous store must not land in the new one
            with contextlib.suppress(Exception):
                mlflow.flush_trace_async_logging()
            mlflow.set_tracking_uri(settings.tracking_uri)
        prompts = load_prompts({(d.kind, d.locale) for d in drafts}, params)
        keyed = [(cache_key(prompts[(d.kind, d.locale)], model, d), d) for d in drafts]
        cached = _cached(engine, sorted({k for k, _ in keyed}))
        jobs: dict[str, _Job] = {}
        for key, d in keyed:
            if key not in cached and key not in jobs:
                jobs[key] = _Job(key, d, prompts[(d.kind, d.locale)])
        todo = list(jobs.values())[: params.max_calls_per_run]
        asked = {job.key for job in todo}
        answers: dict[str, tuple[Answer, str | None]] = {}
        if todo:
            experiment_id = _experiment_id(params.experiment)
            for key, (messages, a) in _run(_generate(todo, endpoint, params)).items():
                job = jobs[key]
                trace = _trace(experiment_id, job.prompt, model, job.draft, messages, a)
                answers[key] = (a, trace)
            # traces are exported by MLflow's background queue while delivery goes on (flushed
            # at process exit; `mlflow.flush_trace_async_logging()` waits for them)
        stats.calls = len(answers)
        fresh = [
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
        _upsert(engine, GeneratedText, fresh, update=False)
        for key, d in keyed:
            prompt = prompts[(d.kind, d.locale)]
            source, reason = "template", None
            if key in cached:
                text, reason = cached[key]
                source = "cache" if text is not None else "template"
            elif key in answers:
                text, reason = answers[key][0].text, answers[key][0].reason
                source = "model" if text is not None else "template"
            elif key in asked:
                text, reason = None, f"deadline: no answer within {params.run_timeout_seconds:g}s"
            else:
                text, reason = None, f"budget: over max_calls_per_run={params.max_calls_per_run}"
            if text is not None:
                texts[d.lookup] = text
                stats.generated += source == "model"
                stats.cached += source == "cache"
            else:
                code = (reason or "unknown").split(":", 1)[0]
                stats.fallbacks[code] = stats.fallbacks.get(code, 0) + 1
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
    _upsert(engine, NoticeText, _complete_records(records), update=True)
    if stats.fallbacks:
        log.warning(
            "notice text: %d template fallback(s) %s",
            sum(stats.fallbacks.values()),
            dict(Counter(stats.fallbacks)),
        )
    return texts, stats


def _complete_records(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Same keys in every row (one executemany); a notice listed twice keeps its last row."""
    import datetime as dt

    now = dt.datetime.now(dt.UTC)
    cols = ("source", "reason", "prompt", "model", "cache_key")
    merged = {r["dedup_key"]: {c: r.get(c) for c in cols} for r in records}
    return [{"dedup_key": k, **v, "updated_at": now} for k, v in merged.items()]


def lookup_generator(texts: dict[str, str]) -> Generator:
    """A `notify.render` generator that answers from `personalise`'s texts (no network):
    None (the template) for a notice without one, its signed link put back otherwise."""

    def generate(template_text: str, facts: dict[str, str]) -> str | None:
        text = texts.get(_lookup_key(to_placeholders(template_text), facts))
        return None if text is None else from_placeholders(text, template_text)

    return generate


def due_rows(engine: Engine, channel: str) -> list[dict[str, Any]]:
    """Outbox rows of `channel` that a delivery run may send (not yet sent or dead)."""
    from notify.outbox import notices

    c = notices.c
    stmt = select(c.dedup_key, c.kind, c.locale, c.payload).where(
        c.channel == channel, c.status.in_(("pending", "failed", "sending"))
    )
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(stmt).mappings()]


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
            _upsert(engine, NoticeText, _complete_records(records), update=True)
        return None, GenerationStats(notices=len(rows), fallbacks={"error": len(rows)})
    return lookup_generator(texts), stats
