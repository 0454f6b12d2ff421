"""The model server misbehaves (slow past the timeout, 429, 500, garbage, refusal, not there at
all): every notice of the billing day is still delivered, with its template text, and the reason
is recorded on its `notice_texts` row; one-off 429/500 answers are retried into model text."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from notify.daily import run_day
from tests.llm_standin import (
    DAY,
    GREETING,
    StandIn,
    delivered,
    flush_traces,
    free_port,
    llm_settings,
    make_store,
    reset_outbox,
    text_records,
)

pytestmark = pytest.mark.integration
AS_OF = dt.date.fromisoformat(DAY)
FAST = {"timeout_seconds": 2.0, "backoff_seconds": 0.01, "retries": 2}


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    root = tmp_path_factory.mktemp("notify_llm_faults")
    yield root, make_store(root)
    flush_traces()  # nothing of ours is exported into another test's MLflow store


def assert_all_on_templates(settings, code: str) -> dict:
    sent = delivered(settings)
    records = text_records(settings)
    assert sent and set(sent) == set(records)
    for key, rec in records.items():
        assert rec["status"] == "sent", key
        assert rec["source"] == "template", key
        assert rec["reason"].startswith(f"{code}:"), rec["reason"]
        assert GREETING[sent[key]["locale"]] not in sent[key]["body"]
    return records


@pytest.mark.parametrize(
    ("mode", "code", "asks_per_notice"),
    [
        ("slow", "timeout", 1),  # the answer comes after 5 s; the client gives up at 2 s
        ("429", "rate_limited", 3),  # 1 + 2 retries, Retry-After: 0 honoured
        ("500", "server_error", 3),
        ("not_json", "bad_response", 1),
        ("refusal", "refusal", 1),
    ],
)
def test_a_failing_model_server_leaves_every_notice_on_its_template(
    root, mode: str, code: str, asks_per_notice: int
) -> None:
    path, url = root
    server = StandIn(mode=mode).start()
    try:
        settings = llm_settings(path, url, server.url, **FAST)
        reset_outbox(settings)
        report = run_day(settings, AS_OF)
        assert report.delivery.sent == report.due > 0
        assert_all_on_templates(settings, code)
        assert server.calls == report.due * asks_per_notice
        # transient failures are not cached: the next run asks again
        if code in ("timeout", "rate_limited", "server_error"):
            from sqlalchemy import text

            from paycycle.store import make_engine

            engine = make_engine(settings.db_url)
            with engine.connect() as conn:
                assert conn.execute(text("SELECT count(*) FROM generated_texts")).scalar() == 0
            engine.dispose()
    finally:
        server.stop()


@pytest.mark.parametrize("mode", ["429_once", "500_once"])
def test_a_one_off_429_or_500_is_retried_into_model_text(root, mode: str) -> None:
    path, url = root
    server = StandIn(mode=mode).start()
    try:
        settings = llm_settings(path, url, server.url, **FAST)
        reset_outbox(settings)
        report = run_day(settings, AS_OF)
        records = text_records(settings)
        assert report.delivery.sent == report.due > 0
        assert {r["source"] for r in records.values()} == {"model"}
        assert server.calls == 2 * report.due
    finally:
        server.stop()


def test_a_server_that_is_down_leaves_every_notice_on_its_template(root) -> None:
    path, url = root
    settings = llm_settings(path, url, f"http://127.0.0.1:{free_port()}/v1", **FAST)
    reset_outbox(settings)
    report = run_day(settings, AS_OF)
    assert report.delivery.sent == report.due > 0
    records = assert_all_on_templates(settings, "connect_error")
    assert all("after 3 attempts" in r["reason"] for r in records.values())


def test_a_retry_after_beyond_the_timeout_is_not_waited_for(root) -> None:
    path, url = root
    server = StandIn(mode="429").start()
    try:
        import tests.llm_standin as standin

        original = standin.answer

        def slow_down(mode, messages, seen):
            status, headers, body = original(mode, messages, seen)
            return status, {**headers, "Retry-After": "3600"}, body

        standin.answer = slow_down
        settings = llm_settings(path, url, server.url, **FAST)
        reset_outbox(settings)
        report = run_day(settings, AS_OF)
        records = assert_all_on_templates(settings, "rate_limited")
        assert server.calls == report.due  # asked once each, never slept for an hour
        assert all("would pass" in r["reason"] for r in records.values())
    finally:
        standin.answer = original
        server.stop()


def test_the_whole_generation_step_is_bounded_by_the_run_timeout(root) -> None:
    path, url = root
    server = StandIn(mode="slow").start()
    try:
        settings = llm_settings(
            path, url, server.url, timeout_seconds=30, run_timeout_seconds=0.5, max_concurrency=2
        )
        reset_outbox(settings)
        report = run_day(settings, AS_OF)
        assert report.delivery.sent == report.due > 0
        assert_all_on_templates(settings, "deadline")
    finally:
        server.stop()


def test_an_unreachable_mlflow_leaves_every_notice_on_its_template(root) -> None:
    path, url = root
    server = StandIn().start()
    try:
        settings = llm_settings(path, url, server.url, **FAST)
        settings = settings.model_copy(
            update={"mlflow_tracking_uri": f"http://127.0.0.1:{free_port()}"}
        )
        reset_outbox(settings)
        import os

        os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
        try:
            report = run_day(settings, AS_OF)
        finally:
            os.environ.pop("MLFLOW_HTTP_REQUEST_MAX_RETRIES")
        sent = delivered(settings)
        assert report.delivery.sent == report.due == len(sent) > 0
        assert server.calls == 0
        records = assert_all_on_templates(settings, "error")
        assert len(records) == report.due
    finally:
        server.stop()
