"""Every link a notice carries must be one the service answers.

The fault: scheduled-cancellation notices carried an `/extend` link that no route served, so a
customer who clicked it got 401. Here a billing day's notices are built with links, signed as
the outbox signs them at send and rendered in every locale; each URL in the text must point at a
self-serve route of the guard and carry a token that route accepts for its purpose.
"""

from __future__ import annotations

import datetime as dt
import re
from urllib.parse import parse_qs, urlsplit

import pytest

from notify.links import PATHS, LinkSigner, verify, with_links
from paycycle.config import NotifyParams, RetentionParams
from paycycle.tables import read_table
from serving.selfserve import SELF_SERVE_PATHS

SECRET = "link-secret-for-tests-0123456789"
URL = re.compile(r"https?://\S+")


@pytest.fixture()
def store(project):  # noqa: ANN001, ANN201
    from paycycle.loader import load_raw
    from paycycle.store import make_engine, upgrade

    upgrade(project.db_url)
    engine = make_engine(project.db_url)
    load_raw(engine, project.raw_dir)
    yield engine
    engine.dispose()


def test_every_link_purpose_has_a_route() -> None:
    assert set(PATHS.values()) <= set(SELF_SERVE_PATHS)
    assert all(SELF_SERVE_PATHS[path] == purpose for purpose, path in PATHS.items())


def test_notices_link_only_to_routes_that_answer(project, store) -> None:  # noqa: ANN001
    from notify.cycles import due_notices
    from notify.render import render

    r = RetentionParams()
    subs = read_table(project.raw_dir, "subscriptions")
    pays = read_table(project.raw_dir, "payments")
    ends = subs.loc[subs["cancelled_at"].notna(), "cancelled_at"].iloc[0].date()
    failed = pays.loc[pays["decline_code"].notna(), "attempted_at"].iloc[0].date()
    signer = LinkSigner(SECRET, r.link_base_url, dt.timedelta(hours=r.link_ttl_hours))
    kinds, links = set(), 0
    for day in (ends - dt.timedelta(days=r.cancellation_days), failed):
        due = due_notices(store, day, NotifyParams(), retention=r, links=True)
        issued = dt.datetime.combine(day, dt.time(), dt.UTC)
        for rec in due.to_dict("records"):
            kinds.add(rec["kind"])
            assert "extend_url" not in rec["payload"]
            sent = with_links(rec["payload"], rec["customer_id"], signer, issued)  # as the outbox
            for locale in ("en", "pt-BR"):
                for url in URL.findall(render(rec["kind"], locale, sent).body):
                    parts = urlsplit(url)
                    assert parts.path in SELF_SERVE_PATHS, url  # any other path needs the API token
                    token = parse_qs(parts.query)["token"][0]
                    claims = verify(token, SECRET, SELF_SERVE_PATHS[parts.path], now=issued)
                    assert claims.customer_id == rec["customer_id"]
                    links += 1
    assert {"scheduled_cancellation", "payment_failed"} <= kinds, kinds
    assert links > 0
