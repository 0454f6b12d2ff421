"""The MLflow side of personalised notice text: prompts in the registry and one trace per call.

Prompts are `<prompt_prefix>.<kind>.<locale>` chat templates (system + user) loaded by the alias
`prompt_alias`; one the registry lacks is registered from `notify/prompts/<locale>/<kind>.yaml`
and given the alias, so a data scientist changes tone by registering a version and moving the
alias. Each model call becomes a trace (span type LLM) in the experiment `notify.llm.experiment`
with the prompt's name and version (also linked to the trace), model, latency, token usage when
reported, attempts and the guard verdict (trace tag `verdict`: `accepted` or the reason's code).
Traces are exported by MLflow's background queue, so logging them does not hold delivery up.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from paycycle.config import mlflow_env_kept

if TYPE_CHECKING:
    from notify.llm import Answer
    from paycycle.config import LlmParams

log = logging.getLogger(__name__)
PROMPTS_PATH = Path(__file__).resolve().parent / "prompts"


def use_tracking_uri(uri: str) -> None:
    """Point MLflow (tracking and registry) at `uri`; traces still queued for another store are
    flushed there first."""
    import mlflow

    with mlflow_env_kept():
        if mlflow.get_tracking_uri() != uri:
            with contextlib.suppress(Exception):
                mlflow.flush_trace_async_logging()
            mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)  # prompts live in the registry: never one set elsewhere


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


def experiment_id(name: str) -> str:
    from mlflow import MlflowClient

    client = MlflowClient()
    found = client.get_experiment_by_name(name)
    return found.experiment_id if found is not None else client.create_experiment(name)


def trace_call(
    experiment_id: str,
    prompt: Any,
    model: str,
    kind: str,
    locale: str,
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
                "kind": kind,
                "locale": locale,
            },
            tags={"verdict": verdict, "kind": kind, "prompt_version": str(prompt.version)},
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
