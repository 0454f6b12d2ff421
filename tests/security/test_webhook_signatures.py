"""Webhook signatures (Standard Webhooks): a captured delivery replayed later, a tampered body, a
forged or stripped signature are refused by the receivers' helper; rotation verifies with both
the old and the new secret; the spec's own test vector matches."""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from notify import webhooks
from notify.channels import Message, PermanentDeliveryError, WebhookChannel
from paycycle.errors import ConfigError

OLD = "whsec_" + base64.b64encode(b"old-key-0123456789abcdef").decode()
NEW = "whsec_" + base64.b64encode(b"new-key-0123456789abcdef").decode()
OTHER = "whsec_" + base64.b64encode(b"attacker-key-0123456789").decode()
T = 1_760_000_000
BODY = b'{"dedup_key": "1:upcoming_charge:2025-01-10", "amount": 49.0}'


def test_matches_the_spec_test_vector() -> None:
    headers = webhooks.sign(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        1614265330,
        b'{"test": 2432232314}',
    )
    assert headers["webhook-signature"] == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


@pytest.mark.parametrize("age", [301, 3600, 86_400 * 30])
def test_replay_outside_tolerance_is_rejected(age: int) -> None:
    headers = webhooks.sign(NEW, "msg_1", T, BODY)
    assert webhooks.verify(NEW, headers, BODY, now=T + 299).msg_id == "msg_1"
    with pytest.raises(webhooks.WebhookVerificationError, match="too old"):
        webhooks.verify(NEW, headers, BODY, now=T + age)


def test_timestamp_moved_forward_by_the_attacker_breaks_the_signature() -> None:
    headers = webhooks.sign(NEW, "msg_1", T, BODY)
    fresh = {**headers, "webhook-timestamp": str(T + 3600)}  # to pass the tolerance check
    with pytest.raises(webhooks.WebhookVerificationError, match="no matching"):
        webhooks.verify(NEW, fresh, BODY, now=T + 3600)
    future = webhooks.sign(NEW, "msg_1", T + 301, BODY)
    with pytest.raises(webhooks.WebhookVerificationError, match="future"):
        webhooks.verify(NEW, future, BODY, now=T)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda h, b: (h, b.replace(b"49.0", b"0.01")),  # body changed
        lambda h, b: (h, b + b" "),  # one byte appended
        lambda h, b: ({**h, "webhook-id": "msg_2"}, b),  # id swapped (de-dup bypass)
        lambda h, b: ({**h, "webhook-signature": "v1,"}, b),  # signature emptied
        lambda h, b: ({**h, "webhook-signature": h["webhook-signature"].replace("v1,", "v2,")}, b),
        lambda h, b: ({k: v for k, v in h.items() if k != "webhook-signature"}, b),
        lambda h, b: ({**h, "webhook-timestamp": "17e8"}, b),
    ],
)
def test_tampered_deliveries_are_rejected(tamper) -> None:
    headers, body = tamper(webhooks.sign(NEW, "msg_1", T, BODY), BODY)
    with pytest.raises(webhooks.WebhookVerificationError):
        webhooks.verify(NEW, headers, body, now=T)


def test_forged_with_another_key_is_rejected() -> None:
    headers = webhooks.sign(OTHER, "msg_1", T, BODY)
    with pytest.raises(webhooks.WebhookVerificationError, match="no matching"):
        webhooks.verify(NEW, headers, BODY, now=T)


def test_rotation_verifies_with_old_and_new_secrets() -> None:
    during = webhooks.sign(f"{OLD} {NEW}", "msg_1", T, BODY)
    assert len(during["webhook-signature"].split()) == 2
    assert webhooks.verify(OLD, during, BODY, now=T)  # receivers not yet rotated
    assert webhooks.verify(NEW, during, BODY, now=T)  # receivers already rotated
    assert webhooks.verify([OLD, NEW], during, BODY, now=T)
    with pytest.raises(webhooks.WebhookVerificationError):
        webhooks.verify(OTHER, during, BODY, now=T)
    after = webhooks.sign(NEW, "msg_1", T, BODY)  # the old key retired
    with pytest.raises(webhooks.WebhookVerificationError):
        webhooks.verify(OLD, after, BODY, now=T)


@pytest.mark.parametrize(
    ("secret", "why"),
    [
        ("plain-password", "whsec_"),
        ("whsec_%%%not-base64", "not base64"),
        ("whsec_" + base64.b64encode(b"short").decode(), "bytes"),
        ("", "no webhook secret"),
    ],
)
def test_bad_secrets_are_refused_by_name(secret: str, why: str, monkeypatch) -> None:
    with pytest.raises(webhooks.WebhookSecretError, match=why):
        webhooks.parse_secrets(secret)
    monkeypatch.setenv("PAYCYCLE_WEBHOOK_SECRET", secret)
    with pytest.raises(ConfigError, match="PAYCYCLE_WEBHOOK_SECRET"):
        WebhookChannel("http://127.0.0.1:9/x")


class Receiver(BaseHTTPRequestHandler):
    """A receiver that verifies with the helper (real clock) and keeps what it saw."""

    captured: list[tuple[dict[str, str], bytes]] = []
    answers: list[int] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server API
        body = self.rfile.read(int(self.headers["Content-Length"]))
        headers = dict(self.headers.items())
        self.captured.append((headers, body))
        try:
            webhooks.verify(f"{NEW}", headers, body)
            code = 200
        except webhooks.WebhookVerificationError as exc:
            code = 401
            body = json.dumps({"error": str(exc)}).encode()
        self.answers.append(code)
        self.send_response(code)
        self.end_headers()
        self.wfile.write(body if code != 200 else b"{}")

    def log_message(self, *args) -> None:
        pass


def message() -> Message:
    return Message(1, "1:upcoming_charge:2025-01-10", 1, "upcoming_charge", "en", None, "s", "b")


def test_captured_delivery_replayed_later_is_refused_over_http() -> None:
    import httpx

    Receiver.captured, Receiver.answers = [], []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/notices"
    try:
        # rotating: the sender signs with both, the receiver only knows NEW
        assert WebhookChannel(url, secret=f"{OLD},{NEW}").send(message()) is True
        headers, body = Receiver.captured[-1]
        assert headers["webhook-id"] == webhooks.message_id_for(message().dedup_key)
        # a delivery captured long ago (signed at T), replayed byte for byte today
        stale = WebhookChannel(url, secret=f"{OLD} {NEW}", clock=lambda: T)
        with pytest.raises(PermanentDeliveryError, match="401"):
            stale.send(message())
        old_headers, old_body = Receiver.captured[-1]
        again = httpx.post(url, content=old_body, headers=old_headers)
        assert again.status_code == 401 and "too old" in again.json()["error"]
        # today's capture with its timestamp rewritten to dodge the window: signature breaks
        replay = httpx.post(url, content=body, headers={**headers, "webhook-timestamp": str(T)})
        assert replay.status_code == 401 and "webhook-" in replay.json()["error"]
    finally:
        server.shutdown()
    assert Receiver.answers == [200, 401, 401, 401]
