"""Personalised notice text end to end: a billing day against a stand-in OpenAI-compatible server
on 127.0.0.1 — model texts delivered, prompts registered in MLflow's registry, one trace per
generated notice, the cache making a re-run free, budget and per-kind switches honoured."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from notify.daily import run_day
from notify.personalise import base_kind
from tests.llm_standin import (
    DAY,
    GREETING,
    StandIn,
    delivered,
    flush_traces,
    llm_settings,
    make_store,
    reset_outbox,
    text_records,
)

pytestmark = pytest.mark.integration
AS_OF = dt.date.fromisoformat(DAY)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    root = tmp_path_factory.mktemp("notify_llm")
    yield root, make_store(root)
    flush_traces()  # nothing of ours is exported into another test's MLflow store


@pytest.fixture()
def server():
    srv = StandIn().start()
    yield srv
    srv.stop()


def test_a_billing_day_sends_model_text_traced_with_registered_prompts(
    root, server, tmp_path: Path
) -> None:
    import mlflow

    path, url = root
    settings = llm_settings(path, url, server.url, mlflow_db=tmp_path / "mlflow.db")
    reset_outbox(settings)
    report = run_day(settings, AS_OF)
    sent = delivered(settings)
    records = text_records(settings)
    assert report.due > 0 and report.delivery.sent == report.due == len(sent) == len(records)
    assert {r["source"] for r in records.values()} == {"model"}
    assert {r["status"] for r in records.values()} == {"sent"}
    for key, msg in sent.items():
        assert GREETING[msg["locale"]] in msg["body"], key
        assert "[LINK]" not in msg["body"]
        if "payment-method?token=" in str(msg["payload"]):  # the signed link is put back
            assert msg["payload"]["update_payment_url"] in msg["body"]
    assert server.calls == report.due  # every notice of this day has its own facts

    mlflow.set_tracking_uri(settings.tracking_uri)
    kinds = {(base_kind(r["kind"]), sent[k]["locale"]) for k, r in records.items()}
    for kind, locale in kinds:
        prompt = mlflow.genai.load_prompt(f"prompts:/paycycle-notice.{kind}.{locale}@production")
        assert prompt.version == 1 and "[LINK]" in prompt.template[0]["content"]
    assert {r["prompt"].rsplit("/", 1)[0] for r in records.values()} == {
        f"paycycle-notice.{k}.{loc}" for k, loc in kinds
    }
    mlflow.flush_trace_async_logging()  # traces are exported in the background
    exp = mlflow.get_experiment_by_name("paycycle-notices-genai")
    traces = mlflow.search_traces(locations=[exp.experiment_id], return_type="list")
    accepted = [t for t in traces if t.info.tags.get("verdict") == "accepted"]
    assert len(accepted) == len(traces) == report.due  # one trace per generated notice
    span = accepted[0].data.spans[0]
    assert span.attributes["model"] == "stand-in-1"
    assert span.attributes["prompt.version"] == "1"
    assert span.attributes["guard.verdict"] == "accepted"
    assert span.attributes["latency_ms"] >= 0
    assert span.attributes["mlflow.chat.tokenUsage"]["total_tokens"] == 180


def test_rerunning_the_day_or_redoing_it_from_scratch_makes_no_new_call(root, server) -> None:
    path, url = root
    settings = llm_settings(path, url, server.url)
    reset_outbox(settings)
    first = run_day(settings, AS_OF)
    calls = server.calls
    assert calls == first.due
    again = run_day(settings, AS_OF)  # same day: nothing new to send, nothing asked
    assert again.enqueued.inserted == 0 and server.calls == calls
    # the outbox lost (or a new channel): the day is sent again, every text from the cache
    import shutil

    from sqlalchemy import text

    from paycycle.store import make_engine

    engine = make_engine(settings.db_url)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM notices"))
        conn.execute(text("DELETE FROM notice_texts"))
    engine.dispose()
    shutil.rmtree(settings.path(settings.params.notify.outbox_dir))
    redo = run_day(settings, AS_OF)
    assert redo.delivery.sent == first.due and server.calls == calls
    assert {r["source"] for r in text_records(settings).values()} == {"cache"}
    assert all(GREETING[m["locale"]] in m["body"] for m in delivered(settings).values())


def test_the_call_budget_and_kind_switch_leave_the_rest_on_templates(root, server) -> None:
    path, url = root
    kinds = dict.fromkeys(llm_settings(path, url, None).params.notify.llm.kinds, True)
    kinds["upcoming_charge"] = False
    settings = llm_settings(path, url, server.url, max_calls_per_run=2, kinds=kinds)
    reset_outbox(settings)
    report = run_day(settings, AS_OF)
    records = text_records(settings)
    by_source = Counter(r["source"] for r in records.values())
    assert server.calls == 2 and by_source["model"] == 2
    assert report.delivery.sent == report.due == len(delivered(settings))
    for key, rec in records.items():
        if rec["kind"] == "upcoming_charge":
            assert rec["source"] == "template" and rec["reason"].startswith("off:")
        elif rec["source"] == "template":
            assert rec["reason"].startswith("budget:")
            msg = delivered(settings)[key]
            assert GREETING[msg["locale"]] not in msg["body"]


def test_without_a_model_configured_the_text_is_the_template(root, server) -> None:
    path, url = root
    settings = llm_settings(path, url, None)
    reset_outbox(settings)
    report = run_day(settings, AS_OF)
    assert report.delivery.sent == report.due > 0
    assert server.calls == 0 and text_records(settings) == {}
    assert not any(GREETING["en"] in m["body"] for m in delivered(settings).values())


@pytest.mark.postgres
def test_a_billing_day_on_postgres_rerun_makes_no_second_call(
    tmp_path: Path, pg_url: str, server
) -> None:
    url = make_store(tmp_path, pg_url)
    settings = llm_settings(tmp_path, url, server.url)
    first = run_day(settings, AS_OF)
    assert first.delivery.sent == first.due == server.calls > 0
    assert {r["source"] for r in text_records(settings).values()} == {"model"}
    again = run_day(settings, AS_OF)
    assert again.delivery.sent == 0 and server.calls == first.due
