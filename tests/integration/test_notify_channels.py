"""SMTP (a local aiosmtpd server) and webhook (a local HTTP server checking the Standard Webhooks
signature and the idempotency key) delivery from the real PostgreSQL outbox, with a customer
lacking an email."""

from __future__ import annotations

import datetime as dt
import json
import socket
import threading
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sqlalchemy import select, text

from notify import webhooks
from notify.channels import SmtpChannel, WebhookChannel, message_id
from notify.cycles import due_notices
from notify.outbox import deliver, enqueue, notices
from paycycle.config import NotifyParams
from paycycle.loader import load_raw
from paycycle.sim.simulator import SimSpec, simulate
from paycycle.store import make_engine, upgrade

pytestmark = [pytest.mark.postgres, pytest.mark.integration]
DAY = dt.date(2025, 1, 10)
PARAMS = NotifyParams()
SECRET = "whsec_" + "c2VjcmV0LWtleS1mb3ItdGVzdHMtMzI="  # base64 of a 23-byte test key
WRONG = "whsec_" + "d3Jvbmcta2V5LWZvci10ZXN0cy0zMg=="


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("channels_sim")
    simulate(
        SimSpec(customers=1_500, months=2, seed=5, chunk_customers=1_500), root / "raw", root / "t"
    )
    return root / "raw"


@pytest.fixture()
def store(pg_url: str, sim: Path):
    upgrade(pg_url)
    engine = make_engine(pg_url)
    load_raw(engine, sim)
    yield engine
    engine.dispose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def outcome(engine) -> dict[str, tuple[str, str | None]]:
    c = notices.c
    with engine.connect() as conn:
        rows = conn.execute(select(c.dedup_key, c.status, c.last_error)).all()
    return {k: (s, e) for k, s, e in rows}


def test_smtp_delivers_each_notice_and_dead_letters_a_missing_email(store) -> None:
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Sink

    class Inbox(Sink):
        def __init__(self) -> None:
            self.mails: list[bytes] = []

        async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd API
            self.mails.append(envelope.content)
            return "250 OK"

    due = due_notices(store, DAY, PARAMS)
    victim = int(due["customer_id"].iloc[0])
    due.at[0, "payload"] = {**due.at[0, "payload"], "email": None}
    with store.begin() as conn:
        conn.execute(text("UPDATE customers SET email='' WHERE customer_id=:c"), {"c": victim})
    enqueue(store, due, "smtp")
    inbox = Inbox()
    port = free_port()
    server = Controller(inbox, hostname="127.0.0.1", port=port)
    server.start()
    try:
        channel = SmtpChannel("127.0.0.1", port, "b@x.io", tls="none")  # plain local relay
        stats = deliver(store, channel, PARAMS)
        channel.close()
    finally:
        server.stop()
    assert stats.sent == len(due) - 1 == len(inbox.mails) and stats.dead == 1
    status = outcome(store)
    dead_key = due.at[0, "dedup_key"]
    assert status[dead_key][0] == "dead" and "no email" in status[dead_key][1]
    mails = [message_from_bytes(m) for m in inbox.mails]
    by_key = {m["X-PayCycle-Dedup-Key"]: m for m in mails}
    assert set(by_key) == set(due["dedup_key"]) - {dead_key}
    for key, mail in by_key.items():
        assert mail["Message-ID"] == message_id(key)
        assert mail["To"].startswith("customer")


class Receiver(BaseHTTPRequestHandler):
    seen: dict[str, int] = {}
    bad: list[str] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server API
        body = self.rfile.read(int(self.headers["Content-Length"]))
        key = self.headers.get("Idempotency-Key")
        try:
            webhooks.verify(SECRET, dict(self.headers.items()), body)
            authentic = True
        except webhooks.WebhookVerificationError:
            authentic = False
        if not authentic:
            self.bad.append(key or "?")
            self.send_response(401)
        elif key != json.loads(body)["dedup_key"]:
            self.bad.append(key or "?")
            self.send_response(400)
        elif key in self.seen:
            self.seen[key] += 1
            self.send_response(409)  # already have it
        else:
            self.seen[key] = 1
            self.send_response(200)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def test_webhook_signs_bodies_and_is_idempotent(store) -> None:
    due = due_notices(store, DAY, PARAMS)
    enqueue(store, due, "webhook")
    Receiver.seen, Receiver.bad = {}, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/notices"
    try:
        stats = deliver(store, WebhookChannel(url, secret=SECRET), PARAMS)
        # a crash replay: the same notices claimed again are recognised by the receiver
        with store.begin() as conn:
            conn.execute(text("UPDATE notices SET status='pending' WHERE kind='upcoming_charge'"))
        replay = deliver(store, WebhookChannel(url, secret=SECRET), PARAMS)
        wrong = deliver(store, WebhookChannel(url, secret=WRONG), PARAMS)
    finally:
        server.shutdown()
    assert Receiver.bad == [] and wrong.batches == 0
    assert stats.sent == len(due) and set(Receiver.seen) == set(due["dedup_key"])
    assert replay.sent == 0 and replay.already_delivered > 0
    assert {s for s, _ in outcome(store).values()} == {"sent"}


def test_webhook_rejecting_the_signature_dead_letters_with_the_reason(store) -> None:
    due = due_notices(store, DAY, PARAMS).head(5)
    enqueue(store, due, "webhook")
    Receiver.seen, Receiver.bad = {}, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/notices"
        stats = deliver(store, WebhookChannel(url, secret=WRONG), PARAMS)
    finally:
        server.shutdown()
    assert stats.dead == 5 and len(Receiver.bad) == 5
    assert all(s == "dead" and "401" in e for s, e in outcome(store).values())
