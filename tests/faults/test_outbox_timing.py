"""Time faults of the outbox: a notice sent days after its notice day (an outage, a backlog)
still carries a link valid for the full TTL from the send, and a retry does not wait for the
next daily run (`paycycle deliver` / the 5-minute `outbox-delivery` schedule)."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import select

from notify.channels import FileChannel, Message, TransientDeliveryError, read_outbox_file
from notify.links import UPDATE_PAYMENT, LinkError, LinkSigner, verify
from notify.outbox import deliver, enqueue, notices
from paycycle.config import NotifyParams
from paycycle.store import make_engine, upgrade
from tests.conftest import PROJECT_ROOT, env_without_prefect, run_python
from tests.faults.seed import DAY, seed_charges, seed_customers

SECRET = "k" * 32
TTL = dt.timedelta(hours=72)
MIDNIGHT = dt.datetime.combine(DAY, dt.time(), dt.UTC)


@pytest.fixture()
def engine(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    upgrade(url)
    eng = make_engine(url)
    yield eng
    eng.dispose()


def card_notice(engine) -> None:
    seed_customers(engine, {5: "ana@example.com"})
    expires = DAY + dt.timedelta(days=5)
    row = {
        "customer_id": 5,
        "subscription_id": None,
        "kind": "card_expiring",
        "cycle_date": expires,
        "dedup_key": f"5:card_expiring:{expires}",
        "locale": "en",
        "payload": {
            "email": "ana@example.com",
            "currency": "USD",
            "card_id": 1,
            "expires_on": expires.isoformat(),
            "links": {"update_payment_url": UPDATE_PAYMENT},
        },
        "error": None,
    }
    assert enqueue(engine, pd.DataFrame([row]), "file", now=MIDNIGHT).inserted == 1


class Outage(FileChannel):
    """Down for the first `n` sends."""

    def __init__(self, outbox_dir: Path, n: int) -> None:
        super().__init__(outbox_dir)
        self.n = n

    def send(self, message: Message) -> bool:
        if self.n > 0:
            self.n -= 1
            raise TransientDeliveryError("channel down")
        return super().send(message)


def token_of(body: str) -> str:
    return re.search(r"token=([\w.\-]+)", body).group(1)


def test_link_signed_at_send_survives_a_three_day_outage(engine, tmp_path: Path) -> None:
    card_notice(engine)
    signer = LinkSigner(SECRET, "https://b.example", TTL)
    params = NotifyParams(backoff_seconds=3600, max_attempts=5)
    channel = Outage(tmp_path, n=1)
    first = MIDNIGHT + dt.timedelta(hours=6)
    assert deliver(engine, channel, params, clock=lambda: first, links=signer).failed == 1
    sent_at = MIDNIGHT + dt.timedelta(days=3, hours=1)  # past a TTL counted from the notice day
    stats = deliver(engine, channel, params, clock=lambda: sent_at, links=signer)
    assert stats.sent == 1
    [record] = read_outbox_file(tmp_path / "notices.jsonl")
    token = token_of(record["body"])
    assert record["payload"]["update_payment_url"].endswith(token)
    claims = verify(token, SECRET, UPDATE_PAYMENT, now=sent_at + TTL - dt.timedelta(minutes=1))
    assert claims.customer_id == 5 and claims.expires_at == sent_at + TTL
    with pytest.raises(LinkError, match="expired"):
        verify(token, SECRET, UPDATE_PAYMENT, now=sent_at + TTL)
    with engine.connect() as conn:  # the outbox keeps the link's name, never a bearer token
        stored = conn.execute(select(notices.c.payload)).scalar_one()
    assert stored["links"] == {"update_payment_url": UPDATE_PAYMENT}
    assert "token" not in str(stored)


def test_without_a_secret_the_notice_goes_out_without_a_link(engine, tmp_path: Path) -> None:
    card_notice(engine)
    assert deliver(engine, FileChannel(tmp_path), NotifyParams()).sent == 1
    [record] = read_outbox_file(tmp_path / "notices.jsonl")
    assert "token=" not in record["body"] and "links" not in record["payload"]


def write_project(root: Path, db: Path) -> dict[str, str]:
    (root / "params.yaml").write_text(
        (PROJECT_ROOT / "params.yaml")
        .read_text()
        .replace("backoff_seconds: 60 ", "backoff_seconds: 0.001 ")
    )
    return env_without_prefect(
        PAYCYCLE_ROOT=str(root),
        PAYCYCLE_DATABASE_URL=f"sqlite:///{db}",
        PREFECT_HOME=str(root / ".prefect"),
    )


def test_deliver_command_retries_without_the_daily_run(engine, tmp_path: Path) -> None:
    seed_charges(engine, {1: "a@example.com", 2: "b@example.com"}, "file")
    down = Outage(tmp_path / "x", n=2)
    stats = deliver(engine, down, NotifyParams(backoff_seconds=0.001), max_batches=1)
    assert stats.failed == 2 and stats.sent == 0
    db = Path(engine.url.database)
    env = write_project(tmp_path, db)
    done = run_python(["-m", "paycycle", "deliver"], tmp_path, env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "sent 2" in done.stdout
    delivered = read_outbox_file(tmp_path / "data" / "outbox" / "notices.jsonl")
    assert sorted(r["customer_id"] for r in delivered) == [1, 2]
    with engine.connect() as conn:
        assert set(conn.execute(select(notices.c.status)).scalars()) == {"sent"}
    bad = run_python(["-m", "paycycle", "deliver", "--channel", "pigeon"], tmp_path, env, 120)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [bad.stderr.strip()]
    assert "--channel" in bad.stderr and "Traceback" not in bad.stderr


def test_deliver_only_schedule_runs_every_five_minutes() -> None:
    from flows import billing
    from flows.deploy import SCHEDULES

    [s] = [s for s in SCHEDULES if s.name == "outbox-delivery"]
    assert s.cron == billing.DELIVER_CRON == "*/5 * * * *"
    path, func = s.entrypoint.split(":")
    assert path == "flows/billing.py" and getattr(billing, func).name == "outbox-delivery"


def test_unknown_link_purpose_is_dead_at_once(engine, tmp_path: Path) -> None:
    seed_customers(engine, {6: "eve@example.com"})
    row = {
        "customer_id": 6,
        "subscription_id": None,
        "kind": "trial_ending",
        "cycle_date": DAY,
        "dedup_key": f"6:trial_ending:{DAY}",
        "locale": "en",
        "payload": {
            "email": "eve@example.com",
            "currency": "USD",
            "plan": "pro",
            "trial_end": DAY.isoformat(),
            "links": {"admin_url": "impersonate"},
        },
        "error": None,
    }
    enqueue(engine, pd.DataFrame([row]), "file")
    signer = LinkSigner(SECRET, "https://b.example", TTL)
    stats = deliver(engine, FileChannel(tmp_path), NotifyParams(), links=signer)
    assert stats.dead == 1 and stats.sent == 0
    with engine.connect() as conn:
        status, attempts, error = conn.execute(
            select(notices.c.status, notices.c.attempts, notices.c.last_error)
        ).one()
    assert (status, attempts) == ("dead", 1) and "purpose" in error
