"""SMTP hostile cases against a real local server (aiosmtpd) with certificates made here:

* an untrusted or wrong-name certificate (a man in the middle) is refused, for STARTTLS and
  SMTPS; the test CA makes the same server trusted;
* a server that hides STARTTLS (a stripping attack) gets neither the password nor the mail;
* login without TLS is refused before any connection;
* a CR/LF in the address (header injection) and a multi-recipient address are dead-lettered on
  the first attempt by the outbox, and the injected recipient never gets a byte.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from notify.channels import (
    Message,
    PermanentDeliveryError,
    SmtpChannel,
    TransientDeliveryError,
    make_channel,
    parse_recipient,
)
from paycycle import config
from paycycle.errors import ConfigError

USER, PASSWORD = "billing", "hunter2-not-in-clear"


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write(path: Path, key, cert: x509.Certificate) -> None:
    path.with_suffix(".key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.with_suffix(".pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def make_ca(folder: Path, name: str) -> tuple[object, x509.Certificate]:
    """A self-signed CA written to `<folder>/<name>.pem`."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(_name(name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    _write(folder / name, key, cert)
    return key, cert


def make_leaf(folder: Path, name: str, ca: tuple[object, x509.Certificate], hosts: list[str]):
    """A server certificate for `hosts` signed by `ca`; returns (cert path, key path)."""
    ca_key, ca_cert = ca
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    sans = [
        x509.IPAddress(ipaddress.ip_address(h)) if h[0].isdigit() else x509.DNSName(h)
        for h in hosts
    ]
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(hosts[0]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write(folder / name, key, cert)
    return folder / f"{name}.pem", folder / f"{name}.key"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("pki")
    ca = make_ca(folder, "test-ca")
    rogue = make_ca(folder, "rogue-ca")
    good = make_leaf(folder, "good", ca, ["localhost", "127.0.0.1"])
    wrong_name = make_leaf(folder, "wrongname", ca, ["mail.other.example"])
    mitm = make_leaf(folder, "mitm", rogue, ["localhost", "127.0.0.1"])
    return {
        "ca": folder / "test-ca.pem",
        "good": good,
        "wrong_name": wrong_name,
        "mitm": mitm,
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_context(pair: tuple[Path, Path]) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(*pair)
    return ctx


class Inbox:
    """Records mails, envelopes and every AUTH attempt with whether TLS was on."""

    def __init__(self) -> None:
        self.mails: list[tuple[list[str], bytes]] = []
        self.logins: list[tuple[str, bool]] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd API
        self.mails.append((list(envelope.rcpt_tos), envelope.content))
        return "250 OK"

    def authenticator(self, server, session, envelope, mechanism, auth_data):
        tls = server.transport.get_extra_info("ssl_object") is not None
        self.logins.append((auth_data.login.decode(), tls))
        ok = auth_data.login.decode() == USER and auth_data.password.decode() == PASSWORD
        return AuthResult(success=ok)


@pytest.fixture()
def smtp_server(pki) -> Iterator:
    """Start a server: `start(mode, cert)` with mode starttls | ssl | plain."""
    running: list[Controller] = []

    def start(mode: str, cert: str = "good") -> tuple[int, Inbox]:
        inbox = Inbox()
        kwargs: dict = {
            "authenticator": inbox.authenticator,
            "auth_require_tls": False,  # the server would accept a clear login: we must not try
        }
        if mode == "starttls":
            kwargs["tls_context"] = server_context(pki[cert])
        elif mode == "ssl":
            kwargs["ssl_context"] = server_context(pki[cert])
        port = free_port()
        ctl = Controller(inbox, hostname="127.0.0.1", port=port, **kwargs)
        ctl.start()
        running.append(ctl)
        return port, inbox

    yield start
    for ctl in running:
        ctl.stop()


def msg(to: str | None, n: int = 1) -> Message:
    return Message(n, f"{n}:upcoming_charge:2025-01-10", n, "upcoming_charge", "en", to, "Hi", "b")


def trusting(pki) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(pki["ca"]))


@pytest.mark.parametrize("mode", ["starttls", "ssl"])
def test_trusted_certificate_delivers_and_logs_in_over_tls(pki, smtp_server, mode) -> None:
    port, inbox = smtp_server(mode)
    ch = SmtpChannel(
        "127.0.0.1", port, "b@x.io", tls=mode, context=trusting(pki), user=USER, password=PASSWORD
    )
    try:
        assert ch.send(msg("Ana <ana@example.com>")) is True
    finally:
        ch.close()
    assert inbox.logins == [(USER, True)]  # the login happened inside TLS
    assert [rcpt for rcpt, _ in inbox.mails] == [["ana@example.com"]]


@pytest.mark.parametrize("mode", ["starttls", "ssl"])
@pytest.mark.parametrize("cert", ["mitm", "wrong_name"])
def test_untrusted_or_wrong_name_certificate_is_refused(pki, smtp_server, mode, cert) -> None:
    port, inbox = smtp_server(mode, cert)
    ch = SmtpChannel(
        "127.0.0.1", port, "b@x.io", tls=mode, context=trusting(pki), user=USER, password=PASSWORD
    )
    with pytest.raises(TransientDeliveryError, match="certificate verification failed"):
        ch.send(msg("ana@example.com"))
    ch.close()
    assert inbox.logins == [] and inbox.mails == []


def test_system_trust_store_does_not_trust_a_self_signed_server(pki, smtp_server) -> None:
    port, inbox = smtp_server("starttls")
    ch = SmtpChannel("127.0.0.1", port, "b@x.io", user=USER, password=PASSWORD)  # defaults
    with pytest.raises(TransientDeliveryError, match="certificate verification failed"):
        ch.send(msg("ana@example.com"))
    assert inbox.logins == [] and inbox.mails == []


def test_stripped_starttls_gets_neither_password_nor_mail(pki, smtp_server) -> None:
    port, inbox = smtp_server("plain")  # offers AUTH in clear, no STARTTLS
    ch = SmtpChannel(
        "127.0.0.1", port, "b@x.io", context=trusting(pki), user=USER, password=PASSWORD
    )
    with pytest.raises(TransientDeliveryError, match="does not offer STARTTLS"):
        ch.send(msg("ana@example.com"))
    assert inbox.logins == [] and inbox.mails == []


def test_login_without_tls_is_refused_before_connecting(smtp_server, monkeypatch) -> None:
    port, inbox = smtp_server("plain")
    with pytest.raises(ConfigError, match="smtp_tls: none .* clear"):
        SmtpChannel("127.0.0.1", port, "b@x.io", tls="none", user=USER, password=PASSWORD)
    monkeypatch.setenv("PAYCYCLE_SMTP_PASSWORD", PASSWORD)
    with pytest.raises(ConfigError, match="PAYCYCLE_SMTP_PASSWORD"):
        SmtpChannel("127.0.0.1", port, "b@x.io", tls="none")
    assert inbox.logins == [] and inbox.mails == []


def settings_for(tmp_path: Path, **notify: object) -> config.Settings:
    tmp_path.mkdir(exist_ok=True)
    lines = "\n".join(f"  {k}: {v}" for k, v in notify.items())
    (tmp_path / "params.yaml").write_text(f"notify:\n{lines}\n")
    return config.load(root=tmp_path)


def test_settings_choose_tls_mode_and_ca_file(pki, smtp_server, tmp_path, monkeypatch) -> None:
    port, inbox = smtp_server("starttls")
    monkeypatch.setenv("PAYCYCLE_SMTP_USER", USER)
    monkeypatch.setenv("PAYCYCLE_SMTP_PASSWORD", PASSWORD)
    s = settings_for(tmp_path, smtp_port=port, smtp_ca_file=pki["ca"])
    assert s.params.notify.smtp_tls == "starttls"
    ch = make_channel("smtp", s)
    try:
        assert ch.send(msg("ana@example.com")) is True
    finally:
        ch.close()
    assert inbox.logins == [(USER, True)] and len(inbox.mails) == 1
    with pytest.raises(ConfigError, match="smtp_tls: none"):
        make_channel("smtp", settings_for(tmp_path / "x", smtp_port=port, smtp_tls="none"))
    with pytest.raises(ConfigError, match="smtp_ca_file"):
        make_channel("smtp", settings_for(tmp_path / "y", smtp_ca_file=tmp_path / "nope.pem"))
    with pytest.raises(ConfigError, match="smtp_tls"):
        settings_for(tmp_path / "z", smtp_tls="maybe")


@pytest.mark.parametrize(
    ("to", "why"),
    [
        ("ana@example.com\r\nBcc: victim@evil.example", "CR/LF"),
        ("ana@example.com\nBcc: victim@evil.example", "CR/LF"),
        ("ana@example.com\r", "CR/LF"),
        ("ana@example.com, victim@evil.example", "exactly one address, found 2"),
        ("ana@example.com; victim@evil.example", "exactly one address, found 2"),
        ("Ana <ana@example.com>, <victim@evil.example>", "exactly one address, found 2"),
        ("not-an-address", "local@domain"),
        ("", "no email"),
    ],
)
def test_hostile_recipients_are_permanent_failures(to: str, why: str) -> None:
    with pytest.raises(PermanentDeliveryError, match=why):
        parse_recipient(to, 7)


@pytest.mark.parametrize(
    ("to", "addr"), [("ana@example.com", "ana@example.com"), ('"Ana" <ana@ex.io>', "ana@ex.io")]
)
def test_one_address_is_parsed(to: str, addr: str) -> None:
    assert parse_recipient(to, 7) == addr


def test_outbox_dead_letters_injection_and_multi_recipient_at_first_attempt(
    smtp_server, tmp_path: Path
) -> None:
    from sqlalchemy import select

    from notify.outbox import deliver, notices
    from paycycle.config import NotifyParams
    from paycycle.store import make_engine, upgrade
    from tests.faults.seed import seed_charges

    url = f"sqlite:///{tmp_path / 'store.db'}"
    upgrade(url)
    engine = make_engine(url)
    seed_charges(
        engine,
        {
            1: "ana@example.com",
            2: "bob@example.com\r\nBcc: victim@evil.example",
            3: "carl@example.com, victim@evil.example",
            4: "dee@example.com\nSubject: pwned",
        },
        "smtp",
    )
    port, inbox = smtp_server("plain")
    channel = SmtpChannel("127.0.0.1", port, "b@x.io", tls="none")  # a local relay, no login
    try:
        stats = deliver(engine, channel, NotifyParams(max_attempts=5))
    finally:
        channel.close()
    with engine.connect() as conn:
        rows = {
            r.customer_id: r
            for r in conn.execute(
                select(
                    notices.c.customer_id,
                    notices.c.status,
                    notices.c.attempts,
                    notices.c.last_error,
                )
            )
        }
    engine.dispose()
    assert stats.sent == 1 and stats.dead == 3 and stats.failed == 0
    assert rows[1].status == "sent"
    for cid, why in ((2, "CR/LF"), (3, "exactly one address"), (4, "CR/LF")):
        assert rows[cid].status == "dead" and rows[cid].attempts == 1, rows[cid]
        assert why in rows[cid].last_error
    assert [rcpt for rcpt, _ in inbox.mails] == [["ana@example.com"]]
    assert b"victim" not in inbox.mails[0][1] and b"pwned" not in inbox.mails[0][1]
