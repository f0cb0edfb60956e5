"""E-mail through an SMTP server (the standard library's :mod:`smtplib`).

Settings (``[channels.smtp]`` in kehu.toml)::

    host = "smtp.example.com"
    port = 587
    starttls = true
    sender = "某某商城 <news@example.com>"
    username = "news@example.com"
    password_env = "KEHU_SMTP_PASSWORD"     # or password = "…"
    list_unsubscribe = "<mailto:unsubscribe@example.com?subject={contact_id}>"

Messages go out ``batch_size`` per connection; a connection the server drops is reopened
once. Subject and body are UTF-8; each message gets ``From``, ``To``, ``Date``, a stable
``Message-ID`` (the same on a retry, so a receiving system can discard a duplicate) and
``List-Unsubscribe`` when configured (``{contact_id}``, ``{customer_id}`` are filled).
A payload field ``html`` becomes an HTML alternative of the text body.

Failures: an unreachable server, a timeout, a dropped connection and any 4xx reply may pass
later (retryable); a 5xx reply (unknown mailbox, refused sender) and a message without a
recipient will not (permanent).

>>> from kehu.campaigns.channels import ChannelConfigError
>>> try:
...     SmtpChannel({"host": "127.0.0.1", "port": 70000, "sender": "news@example.com"})
... except ChannelConfigError as exc:
...     print(exc)  # doctest: +NORMALIZE_WHITESPACE
Channel 'smtp': the setting 'port' is wrong: Input should be less than or equal to 65535
(got 70000).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import smtplib
import socket
import ssl
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formataddr, formatdate, make_msgid, parseaddr
from typing import Any, ClassVar

from pydantic import Field, SecretStr, model_validator

from kehu.campaigns.channels.base import Channel, Message, SendResult, Settings
from kehu.campaigns.outbox import render
from kehu.i18n import _


class SmtpSettings(Settings):
    host: str = Field("localhost", min_length=1, description="SMTP server host name.")
    port: int = Field(25, ge=1, le=65535, description="25, 587 (STARTTLS) or 465 (SSL).")
    sender: str = Field(min_length=3, description="From address, e.g. '商城 <news@shop.cn>'.")
    username: str | None = Field(None, description="Login name, when the server wants one.")
    password: SecretStr | None = Field(None, description="Login password.")
    password_env: str | None = Field(
        None,
        description="Environment variable holding the "
        "password (instead of writing it in the settings).",
    )
    starttls: bool = Field(False, description="Upgrade the connection with STARTTLS.")
    ssl: bool = Field(False, description="Connect with TLS from the start (port 465).")
    timeout: float = Field(30.0, gt=0, le=600, description="Seconds to wait for the server.")
    batch_size: int = Field(100, ge=1, le=10_000, description="Messages per connection.")
    list_unsubscribe: str | None = Field(
        None,
        description="List-Unsubscribe header value; {contact_id} and {customer_id} are filled in.",
    )
    reply_to: str | None = Field(None, description="Reply-To address.")
    local_hostname: str | None = Field(None, description="Name sent in EHLO (default: FQDN).")

    @model_validator(mode="after")
    def _consistent(self) -> SmtpSettings:
        if "@" not in parseaddr(self.sender)[1]:
            raise ValueError(
                f"sender {self.sender!r} has no e-mail address "
                "(write 'news@example.com' or '名称 <news@example.com>')"
            )
        if self.ssl and self.starttls:
            raise ValueError(
                "ssl and starttls exclude each other: ssl for port 465, starttls for port 587"
            )
        if (self.password is not None or self.password_env) and not self.username:
            raise ValueError("a password is given but no username")
        return self


class SmtpChannel(Channel[SmtpSettings]):
    """E-mail through an SMTP server (smtplib): UTF-8, batches per connection."""

    name: ClassVar[str] = "smtp"
    config_model = SmtpSettings
    message_channels: ClassVar[tuple[str, ...] | None] = ("email",)

    @property
    def _where(self) -> str:
        return f"{self.config.host}:{self.config.port}"

    def _password(self) -> str:
        c = self.config
        if c.password_env:
            value = os.environ.get(c.password_env)
            if value is None:
                raise _PermanentSetupError(
                    _(
                        "The environment variable {name} (the SMTP "
                        "password_env setting) is not set."
                    ).format(name=c.password_env)
                )
            return value
        return c.password.get_secret_value() if c.password is not None else ""

    def _connect(self) -> smtplib.SMTP:
        c = self.config
        context = ssl.create_default_context()
        conn: smtplib.SMTP
        if c.ssl:
            conn = smtplib.SMTP_SSL(
                c.host, c.port, local_hostname=c.local_hostname, timeout=c.timeout, context=context
            )
        else:
            conn = smtplib.SMTP(c.host, c.port, local_hostname=c.local_hostname, timeout=c.timeout)
        try:
            if c.starttls:
                conn.starttls(context=context)
            if c.username:
                conn.login(c.username, self._password())
        except BaseException:
            conn.close()
            raise
        return conn

    def _message_id(self, m: Message) -> str:
        domain = parseaddr(self.config.sender)[1].rpartition("@")[2] or "kehu.local"
        if not m.contact_id:
            return make_msgid(domain=domain)
        safe = re.sub(r"[^A-Za-z0-9._-]", "-", m.contact_id)[:60]
        digest = hashlib.sha1(m.contact_id.encode("utf-8")).hexdigest()[:10]
        return f"<{safe}.{digest}@{domain}>"

    def compose(self, m: Message) -> EmailMessage:
        """The e-mail for ``m`` (raises ValueError for a header that cannot be written)."""
        c = self.config
        msg = EmailMessage()
        msg["From"] = c.sender
        name = m.payload.get("name")
        msg["To"] = formataddr((str(name), m.recipient or "")) if name else m.recipient
        msg["Subject"] = m.subject or ""
        msg["Date"] = formatdate(localtime=True)
        msg["Message-ID"] = self._message_id(m)
        if c.reply_to:
            msg["Reply-To"] = c.reply_to
        if c.list_unsubscribe:
            msg["List-Unsubscribe"] = render(c.list_unsubscribe, m.fields())
        msg.set_content(m.body or "")
        html = m.payload.get("html")
        if html:
            msg.add_alternative(str(html), subtype="html")
        return msg

    def send(self, messages: Sequence[Message]) -> list[SendResult]:
        results: list[SendResult] = []
        down: SendResult | None = None  # once the server cannot be reached the rest wait
        size = self.batch_size or len(messages) or 1
        for start in range(0, len(messages), size):
            connection = _Connection(self)
            try:
                for m in messages[start : start + size]:
                    if down is not None:
                        results.append(down)
                        continue
                    prepared = self._prepare(m)
                    if isinstance(prepared, SendResult):
                        results.append(prepared)
                        continue
                    result, reachable = connection.deliver(prepared, m.recipient or "")
                    if not reachable:
                        down = result
                    results.append(result)
            finally:
                connection.close()
        return results

    def _prepare(self, m: Message) -> EmailMessage | SendResult:
        """The e-mail of ``m``, or the permanent failure why there is none."""
        if not m.recipient:
            return SendResult.failure(
                _("No e-mail address for customer {customer}: nothing to send to.").format(
                    customer=m.customer_id
                ),
                retryable=False,
            )
        try:
            return self.compose(m)
        except (ValueError, TypeError) as exc:
            return SendResult.failure(
                _("Cannot write the e-mail to {recipient}: {err}").format(
                    recipient=m.recipient, err=exc
                ),
                retryable=False,
            )

    def _refused(self, recipient: str, code: int, reply: bytes | str) -> SendResult:
        text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
        return SendResult.failure(
            _("The SMTP server {server} refused the message to {recipient}: {code} {reply}").format(
                server=self._where, recipient=recipient, code=code, reply=text
            ),
            retryable=not 500 <= code < 600,
        )

    def _connect_failure(self, exc: BaseException) -> SendResult:
        if isinstance(exc, _PermanentSetupError):
            return SendResult.failure(str(exc), retryable=False)
        if isinstance(exc, smtplib.SMTPAuthenticationError):
            text = (
                exc.smtp_error.decode("utf-8", "replace")
                if isinstance(exc.smtp_error, bytes)
                else str(exc.smtp_error)
            )
            return SendResult.failure(
                _(
                    "The SMTP server {server} refused the login of "
                    "'{user}': {code} {reply}. Check username and "
                    "password."
                ).format(
                    server=self._where, user=self.config.username, code=exc.smtp_code, reply=text
                ),
                retryable=not 500 <= exc.smtp_code < 600,
            )
        if isinstance(exc, smtplib.SMTPNotSupportedError):
            return SendResult.failure(
                _(
                    "The SMTP server {server} does not support what the "
                    "settings ask for: {err}. Check starttls, ssl and "
                    "username."
                ).format(server=self._where, err=exc),
                retryable=False,
            )
        if isinstance(exc, smtplib.SMTPResponseException):
            return self._refused("-", exc.smtp_code, exc.smtp_error)
        return SendResult.failure(
            _("Cannot reach the SMTP server {server}: {err}").format(
                server=self._where, err=_describe(exc)
            ),
            retryable=True,
        )


class _Connection:
    """One SMTP connection of a batch: opened on first use, reopened once when the server
    drops it (an idle limit, a per-connection quota)."""

    def __init__(self, channel: SmtpChannel) -> None:
        self.channel = channel
        self.conn: smtplib.SMTP | None = None

    def deliver(self, email: EmailMessage, recipient: str) -> tuple[SendResult, bool]:
        """The result of sending ``email``, and whether the server could be reached."""
        try:
            return self._attempt(email, recipient)
        except smtplib.SMTPServerDisconnected:
            pass
        try:
            return self._attempt(email, recipient)
        except smtplib.SMTPServerDisconnected as exc:
            return SendResult.failure(
                _("The SMTP server {server} closed the connection: {err}").format(
                    server=self.channel._where, err=exc
                ),
                retryable=True,
            ), True

    def _attempt(self, email: EmailMessage, recipient: str) -> tuple[SendResult, bool]:
        ch = self.channel
        if self.conn is None:
            try:
                self.conn = ch._connect()
            except (OSError, smtplib.SMTPException, _PermanentSetupError) as exc:
                return ch._connect_failure(exc), False
        try:
            self.conn.send_message(
                email, from_addr=parseaddr(ch.config.sender)[1], to_addrs=[recipient]
            )
        except smtplib.SMTPServerDisconnected:
            self.conn = None
            raise
        except smtplib.SMTPRecipientsRefused as exc:
            code, reply = next(iter(exc.recipients.values()))
            return ch._refused(recipient, code, reply), True
        except smtplib.SMTPResponseException as exc:
            return ch._refused(recipient, exc.smtp_code, exc.smtp_error), True
        except (OSError, smtplib.SMTPException) as exc:
            self.close()
            timed_out = isinstance(exc, socket.timeout | TimeoutError)
            return SendResult.failure(
                _("Sending to {recipient} through {server} failed: {err}").format(
                    recipient=recipient, server=ch._where, err=_describe(exc)
                ),
                retryable=True,
            ), not timed_out  # a server that stopped answering is not waited for again
        return SendResult.success(), True

    def close(self) -> None:
        if self.conn is not None:
            _quietly_quit(self.conn)
            self.conn = None


class _PermanentSetupError(Exception):
    """A setting problem found when connecting (not retried)."""


def _describe(exc: BaseException) -> str:
    if isinstance(exc, socket.timeout | TimeoutError):
        return _("no answer in time ({err})").format(err=exc.__class__.__name__)
    return f"{exc.__class__.__name__}: {exc}"


def _quietly_quit(conn: smtplib.SMTP) -> None:
    try:
        conn.quit()
    except (OSError, smtplib.SMTPException):
        _quietly_close(conn)


def _quietly_close(conn: Any) -> None:
    with contextlib.suppress(OSError):
        conn.close()
