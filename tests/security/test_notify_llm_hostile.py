"""A hostile or careless model: answers that drop a fact, invent a discount, slip in a phishing
link or switch language never reach a customer — the template is sent and the guard's verdict is
recorded. And what leaves PayCycle for the model is the notice's facts only: no email, customer
id or link token; the API key travels in the Authorization header and is stored nowhere."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from notify.daily import run_day
from paycycle.store import make_engine
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
KEY = "sk-test-do-not-leak-0123456789"


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    root = tmp_path_factory.mktemp("notify_llm_hostile")
    yield root, make_store(root)
    flush_traces()  # nothing of ours is exported into another test's MLflow store


@pytest.mark.parametrize(
    ("mode", "check"),
    [
        ("drop_fact", "lost_fact"),
        ("add_number", "new_number"),
        ("foreign_url", "foreign_url"),
        ("wrong_locale", "wrong_locale"),
    ],
)
def test_a_guard_failure_sends_the_template_and_records_the_verdict(
    root, mode: str, check: str
) -> None:
    path, url = root
    server = StandIn(mode=mode).start()
    try:
        settings = llm_settings(path, url, server.url)
        reset_outbox(settings)
        report = run_day(settings, AS_OF)
        sent, records = delivered(settings), text_records(settings)
        assert report.delivery.sent == report.due == len(sent) == len(records) > 0
        for key, rec in records.items():
            assert rec["source"] == "template" and rec["status"] == "sent"
            assert rec["reason"].startswith(f"guard: {check}:"), rec["reason"]
            body = sent[key]["body"]
            assert "evil" not in body and "50%" not in body
            assert GREETING[sent[key]["locale"]] not in body
        # the rejected answer is remembered: redoing the day does not ask again
        calls = server.calls
        engine = make_engine(settings.db_url)
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM notices"))
        engine.dispose()
        run_day(settings, AS_OF)
        assert server.calls == calls
    finally:
        server.stop()


def test_only_the_notice_facts_leave_and_the_api_key_is_not_stored(root) -> None:
    import mlflow

    path, url = root
    server = StandIn().start()
    try:
        settings = llm_settings(path, url, server.url, api_key=KEY)
        reset_outbox(settings)
        report = run_day(settings, AS_OF)
        sent = delivered(settings)
        assert server.calls == report.due > 0
        wire = json.dumps(server.requests)
        for msg in sent.values():
            payload = msg["payload"]
            assert payload["email"] not in wire
            for link in ("update_payment_url", "extend_url"):
                if payload.get(link):
                    assert payload[link] not in wire and "token=" not in wire
        assert "customer_id" not in wire and "@" not in wire
        assert {h.get("Authorization") for h in server.headers} == {f"Bearer {KEY}"}
        engine = make_engine(settings.db_url)
        with engine.connect() as conn:
            for table in ("notice_texts", "generated_texts", "notices"):
                dump = json.dumps([list(r) for r in conn.execute(text(f"SELECT * FROM {table}"))],
                                  default=str)  # fmt: skip
                assert KEY not in dump, table
        engine.dispose()
        mlflow.set_tracking_uri(settings.tracking_uri)
        mlflow.flush_trace_async_logging()  # traces are exported in the background
        exp = mlflow.get_experiment_by_name("paycycle-notices-genai")
        traces = mlflow.search_traces(locations=[exp.experiment_id], return_type="list")
        assert traces and all(KEY not in t.to_json() for t in traces)
        assert KEY not in repr(settings)
    finally:
        server.stop()
