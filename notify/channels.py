"""Delivery channels: JSON lines on disk (default), SMTP over TLS and a signed webhook.

Every channel is idempotent on the notice's dedup key, or passes it on so the receiver can be:

* `FileChannel` keeps one JSON-lines file; under an exclusive `flock` it reads what other
  writers appended since it last looked and skips a key already in the file, so a retry after a
  crash (or a second worker) never writes a notice twice.
* `WebhookChannel` sends the key as `Idempotency-Key` and `webhook-id` and signs per Standard
  Webhooks (`notify/webhooks.py`: id, timestamp, `v1` signatures; secrets from
  `$PAYCYCLE_WEBHOOK_SECRET`); a 409 reply means the receiver already has it.
* `SmtpChannel` derives the `Message-ID` from the key (SMTP itself cannot refuse a duplicate;
  mail stores and our own outbox status do the rest, see `notify/outbox.py`). It speaks TLS
  (STARTTLS or SMTPS, certificate and host name verified), never logs in over clear text, and
  sends to exactly one parsed recipient: a CR/LF or several addresses dead-letter at once.

`send` returns True when the notice was delivered now and False when the channel already had it;
it raises `PermanentDeliveryError` (dead-letter at once) or `TransientDeliveryError` (retry).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import os
import re
import smtplib
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import getaddresses
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from notify import webhooks
from paycycle.errors import ConfigError

if TYPE_CHECKING:
    from paycycle.config import Settings

WEBHOOK_SECRET_ENV = "PAYCYCLE_WEBHOOK_SECRET"
SMTP_USER_ENV = "PAYCYCLE_SMTP_USER"
SMTP_PASSWORD_ENV = "PAYCYCLE_SMTP_PASSWORD"
OUTBOX_FILE = "notices.jsonl"
SMTP_TLS_MODES = ("starttls", "ssl", "none")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class DeliveryError(Exception):
    """A notice could not be delivered; `permanent` says whether retrying can help."""

    permanent = False


class TransientDeliveryError(DeliveryError):
    """Retry later (network, 5xx, 4xx SMTP replies)."""


class PermanentDeliveryError(DeliveryError):
    """Retrying cannot help (no address, rejected recipient, 4xx webhook reply)."""

    permanent = True


@dataclass(frozen=True)
class Message:
    """A rendered notice, ready for a channel."""

    notice_id: int
    dedup_key: str
    customer_id: int
    kind: str
    locale: str
    to: str | None
    subject: str
    body: str
    payload: dict[str, Any] = field(default_factory=dict)

    def as_record(self) -> dict[str, Any]:
        return {
            "dedup_key": self.dedup_key,
            "notice_id": self.notice_id,
            "customer_id": self.customer_id,
            "kind": self.kind,
            "locale": self.locale,
            "to": self.to,
            "subject": self.subject,
            "body": self.body,
            "payload": self.payload,
        }


class Channel(Protocol):
    """What the outbox delivers through."""

    name: str

    def send(self, message: Message) -> bool:
        """Deliver; True if delivered now, False if the channel already had this dedup key."""
        ...

    def close(self) -> None:
        """Release connections and files."""
        ...


class FileChannel:
    """Append notices as JSON lines to `<outbox_dir>/notices.jsonl`, at most once per key."""

    name = "file"

    def __init__(self, outbox_dir: Path, filename: str = OUTBOX_FILE, fsync: bool = False) -> None:
        outbox_dir.mkdir(parents=True, exist_ok=True)
        self.path = outbox_dir / filename
        self.fsync = fsync
        self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        self._keys: set[str] = set()
        self._offset = 0  # bytes of the file already parsed into _keys

    def _catch_up(self, size: int) -> bytes:
        """Parse lines other writers appended; returns a prefix that ends a torn last line."""
        if size <= self._offset:
            return b""
        chunk = os.pread(self._fd, size - self._offset, self._offset)
        for line in chunk.splitlines(keepends=True):
            self._offset += len(line)
            if not line.endswith(b"\n"):
                return b"\n"  # a writer died mid-line: terminate it, it stays unparseable
            try:
                self._keys.add(json.loads(line)["dedup_key"])
            except (ValueError, KeyError, TypeError):
                continue
        return b""

    def send(self, message: Message) -> bool:
        record = message.as_record()
        record["delivered_at"] = dt.datetime.now(dt.UTC).isoformat()
        line = (json.dumps(record, ensure_ascii=False, default=str) + "\n").encode()
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            prefix = self._catch_up(os.fstat(self._fd).st_size)
            if message.dedup_key in self._keys:
                return False
            os.write(self._fd, prefix + line)  # one write(2) of O_APPEND: whole line or nothing
            if self.fsync:
                os.fsync(self._fd)
            self._offset += len(prefix) + len(line)
            self._keys.add(message.dedup_key)
            return True
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def read_outbox_file(path: Path) -> list[dict[str, Any]]:
    """Every well-formed record of a file channel's output (torn lines are skipped)."""
    out = []
    if not path.exists():
        return out
    for line in path.read_bytes().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def message_id(dedup_key: str, domain: str = "paycycle") -> str:
    """A stable Message-ID for a dedup key, so resends are recognisable as the same mail."""
    return f"<{hashlib.sha256(dedup_key.encode()).hexdigest()[:32]}@{domain}>"


def parse_recipient(to: str | None, customer_id: int) -> str:
    """The one bare address in `to`, or a `PermanentDeliveryError` saying why there is none.

    A control character (CR/LF: header injection), no address, several addresses or one that
    is not `local@domain` cannot get better by retrying, so the notice is dead-lettered at once.
    """
    where = f"customer {customer_id}: email"
    if not to or not to.strip():
        raise PermanentDeliveryError(f"customer {customer_id} has no email address for smtp")
    if _CONTROL.search(to):
        raise PermanentDeliveryError(f"{where}: contains a control character (CR/LF), refused")
    parsed = [addr for _, addr in getaddresses([to]) if addr]
    if len(parsed) != 1:
        raise PermanentDeliveryError(f"{where}: expected exactly one address, found {len(parsed)}")
    addr = parsed[0]
    local, at, domain = addr.rpartition("@")
    odd = any(c in addr for c in ' ,;<>()[]\\"')
    if not at or not local or "@" in local or "." not in domain or odd:
        raise PermanentDeliveryError(f"{where}: not a single local@domain address")
    return addr


class SmtpChannel:
    """SMTP via smtplib over STARTTLS or SMTPS with a verifying TLS context.

    `tls` is `starttls` (upgrade after EHLO; a server that does not offer it is refused, never
    used in clear), `ssl` (TLS from the first byte) or `none` (plain, for a local relay; login
    is then refused). Credentials come from `$PAYCYCLE_SMTP_USER`/`$PAYCYCLE_SMTP_PASSWORD`.
    """

    name = "smtp"

    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        tls: str = "starttls",
        timeout: float = 10.0,
        context: ssl.SSLContext | None = None,
        user: str | None = None,
        password: str | None = None,
    ) -> None:
        if tls not in SMTP_TLS_MODES:
            modes = ", ".join(SMTP_TLS_MODES)
            raise ConfigError(f"notify.smtp_tls: unknown {tls!r}; choose {modes}")
        user = user if user is not None else os.environ.get(SMTP_USER_ENV)
        password = password if password is not None else os.environ.get(SMTP_PASSWORD_ENV)
        if tls == "none" and (user or password):
            raise ConfigError(
                f"notify.smtp_tls: none would send ${SMTP_USER_ENV}/${SMTP_PASSWORD_ENV} in clear"
                " text; use starttls or ssl"
            )
        self.host, self.port, self.sender = host, port, sender
        self.tls, self.timeout = tls, timeout
        self.user, self.password = user or None, password or ""
        self.context = context or ssl.create_default_context()
        self._smtp: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        if self._smtp is None:
            smtp: smtplib.SMTP
            if self.tls == "ssl":
                smtp = smtplib.SMTP_SSL(
                    self.host, self.port, timeout=self.timeout, context=self.context
                )
            else:
                smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            try:
                if self.tls == "starttls":
                    smtp.ehlo()
                    if not smtp.has_extn("starttls"):
                        raise TransientDeliveryError(
                            f"smtp {self.host}:{self.port}: server does not offer STARTTLS;"
                            " refusing to continue in clear text"
                        )
                    smtp.starttls(context=self.context)
                    smtp.ehlo()
                if self.user:
                    smtp.login(self.user, self.password)
            except BaseException:
                smtp.close()
                raise
            self._smtp = smtp
        return self._smtp

    def send(self, message: Message) -> bool:
        to = parse_recipient(message.to, message.customer_id)
        mail = EmailMessage()
        try:
            mail["From"] = self.sender
            mail["To"] = to
            mail["Subject"] = message.subject
            mail["Message-ID"] = message_id(message.dedup_key)
            mail["X-PayCycle-Dedup-Key"] = message.dedup_key
            mail["Content-Language"] = message.locale
            mail.set_content(message.body)
        except ValueError as exc:  # e.g. a linefeed in a header value
            raise PermanentDeliveryError(f"bad header: {exc}") from None
        try:
            refused = self._connect().send_message(mail, self.sender, [to])
        except smtplib.SMTPRecipientsRefused as exc:
            raise PermanentDeliveryError(f"recipient refused: {exc.recipients}") from None
        except smtplib.SMTPAuthenticationError as exc:
            self.close()
            raise TransientDeliveryError(f"smtp login refused {exc.smtp_code}") from None
        except smtplib.SMTPResponseException as exc:
            err = f"smtp {exc.smtp_code}: {exc.smtp_error!r}"
            if 500 <= exc.smtp_code < 600:
                raise PermanentDeliveryError(err) from None
            self.close()
            raise TransientDeliveryError(err) from None
        except ssl.SSLCertVerificationError as exc:
            self.close()
            raise TransientDeliveryError(
                f"smtp: TLS certificate verification failed: {exc.verify_message}"
            ) from None
        except (smtplib.SMTPException, OSError) as exc:
            self.close()
            raise TransientDeliveryError(f"smtp: {exc.__class__.__name__}: {exc}") from None
        if refused:
            raise PermanentDeliveryError(f"recipient refused: {refused}")
        return True

    def close(self) -> None:
        if self._smtp is not None:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                self._smtp.quit()
            self._smtp = None


class WebhookChannel:
    """POST each notice as JSON, signed per Standard Webhooks (`notify.webhooks`).

    `webhook-id` is derived from the dedup key (stable across retries) and also sent as
    `Idempotency-Key`; `webhook-timestamp` is the time of this attempt; one `v1` signature per
    secret in `$PAYCYCLE_WEBHOOK_SECRET` (`whsec_<base64>`, several during a key rotation).
    """

    name = "webhook"

    def __init__(
        self,
        url: str,
        secret: str | None = None,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        import httpx

        secret = secret or os.environ.get(WEBHOOK_SECRET_ENV)
        if not secret:
            raise ConfigError(f"webhook channel: set ${WEBHOOK_SECRET_ENV} to the signing secret")
        try:
            webhooks.parse_secrets(secret)
        except webhooks.WebhookSecretError as exc:
            raise ConfigError(f"${WEBHOOK_SECRET_ENV}: {exc}") from None
        self.url, self.secret, self.clock = url, secret, clock
        self._client = httpx.Client(timeout=timeout)

    def send(self, message: Message) -> bool:
        import httpx

        body = json.dumps(message.as_record(), sort_keys=True, default=str).encode()
        msg_id = webhooks.message_id_for(message.dedup_key)
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": message.dedup_key,
            **webhooks.sign(self.secret, msg_id, int(self.clock()), body),
        }
        try:
            resp = self._client.post(self.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise TransientDeliveryError(f"webhook: {exc.__class__.__name__}: {exc}") from None
        if resp.status_code == 409:
            return False
        if resp.is_success:
            return True
        err = f"webhook {resp.status_code}: {resp.text[:200]}"
        if 400 <= resp.status_code < 500 and resp.status_code not in (408, 425, 429):
            raise PermanentDeliveryError(err)
        raise TransientDeliveryError(err)

    def close(self) -> None:
        self._client.close()


def make_channel(name: str, settings: Settings) -> Channel:
    """The channel called `name`, configured from `settings.params.notify`.

    Raises:
        ConfigError: unknown channel name or missing secret.
    """
    p = settings.params.notify
    if name == "file":
        return FileChannel(settings.path(p.outbox_dir))
    if name == "smtp":
        cafile = settings.path(p.smtp_ca_file) if p.smtp_ca_file else None
        if cafile is not None and not cafile.is_file():
            raise ConfigError(f"notify.smtp_ca_file: {cafile} is not a file")
        context = ssl.create_default_context(cafile=str(cafile) if cafile else None)
        return SmtpChannel(p.smtp_host, p.smtp_port, p.sender, tls=p.smtp_tls, context=context)
    if name == "webhook":
        return WebhookChannel(p.webhook_url, timeout=p.webhook_timeout_seconds)
    raise ConfigError(f"channel: unknown {name!r}; choose file, smtp or webhook")
