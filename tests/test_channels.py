"""Campaign channels and the outbox, against real servers: an SMTP server (aiosmtpd) and an
HTTP server on 127.0.0.1, the app store on SQLite and PostgreSQL. Nothing is mocked but the
clock's waits (``sleep``)."""

from __future__ import annotations

import email
import hashlib
import hmac
import json
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from email import policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from kehu.campaigns.channels import (
    Channel,
    ChannelConfigError,
    Message,
    NoSettings,
    SendResult,
    available_channels,
    get_channel,
    register_channel,
    unregister_channel,
)
from kehu.campaigns.outbox import (
    claim_pending,
    deliver,
    enqueue,
    failures,
    mark_failed,
    mark_sent,
    outbox_status,
    retry_failed,
)
from kehu.store.db import AppStore
from kehu.store.models import OutboxMessage
from kehu.store.services import audit_log

NO_WAIT = {"sleep": lambda s: None}


@pytest.fixture
def store(store_url: str) -> Iterator[AppStore]:
    s = AppStore(store_url)
    s.upgrade()
    yield s
    s.dispose()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rows(store: AppStore) -> dict[str, OutboxMessage]:
    with store.session() as s:
        return {r.contact_id or "": r for r in s.scalars(select(OutboxMessage))}


# -- registry -----------------------------------------------------------------------------


def test_builtins_are_registered_through_the_entry_points() -> None:
    installed = {ep.name: ep.value for ep in entry_points(group="kehu.channels")}
    assert installed["smtp"] == "kehu.campaigns.channels.smtp:SmtpChannel"
    assert {"outbox", "file", "smtp", "webhook"} <= set(installed)
    listed = available_channels()
    assert listed["outbox"].startswith("Leave messages in the outbox table")
    assert type(get_channel("webhook", {"url": "http://127.0.0.1:1/"})).__name__ == (
        "WebhookChannel"
    )


def test_unknown_channel_and_wrong_settings_are_named() -> None:
    with pytest.raises(ChannelConfigError, match=r"No channel named 'fax'\. Available channels: "
                       r"file, outbox, smtp, webhook"):
        get_channel("fax")
    with pytest.raises(ChannelConfigError, match="the setting 'sender' is required"):
        get_channel("smtp", {"host": "127.0.0.1"})
    with pytest.raises(ChannelConfigError, match="unknown setting 'hots'; the settings are: "
                       "host, port"):
        get_channel("smtp", {"hots": "x", "sender": "a@b.cn"})
    with pytest.raises(ChannelConfigError, match="ssl and starttls exclude each other"):
        get_channel("smtp", {"sender": "a@b.cn", "ssl": True, "starttls": True})
    with pytest.raises(ChannelConfigError, match=r"the setting 'format' is wrong.*'pdf'"):
        get_channel("file", {"path": "/tmp", "format": "pdf"})


def test_a_third_party_channel_installed_as_a_distribution(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           ) -> None:
    """A package 'kehu-echo' declaring [project.entry-points."kehu.channels"] echo = ...
    shows up and works, with no registration call in kehu."""
    (tmp_path / "kehu_echo_plugin.py").write_text(
        "from kehu.campaigns.channels import Channel, NoSettings, SendResult\n"
        "class EchoChannel(Channel[NoSettings]):\n"
        "    '''Echo: every message counts as sent (a third-party test channel).'''\n"
        "    name = 'echo'\n"
        "    config_model = NoSettings\n"
        "    def send(self, messages):\n"
        "        return [SendResult.success() for _ in messages]\n", encoding="utf-8")
    dist = tmp_path / "kehu_echo-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: kehu-echo\nVersion: 1.0\n",
                                   encoding="utf-8")
    (dist / "entry_points.txt").write_text(
        "[kehu.channels]\necho = kehu_echo_plugin:EchoChannel\n", encoding="utf-8")
    assert "echo" not in available_channels()
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        listed = available_channels()
        assert listed["echo"] == "Echo: every message counts as sent (a third-party test channel)."
        ch = get_channel("echo")
        assert ch.send([Message(channel="sms")]) == [SendResult(ok=True)]
    finally:
        sys.modules.pop("kehu_echo_plugin", None)


def test_in_process_registration() -> None:
    class Nothing(Channel[NoSettings]):
        """Registered in a notebook."""

        name = "nothing"
        config_model = NoSettings

        def send(self, messages: Any) -> list[SendResult]:
            return []

    register_channel("nothing", Nothing)
    try:
        assert available_channels()["nothing"] == "Registered in a notebook."
        assert isinstance(get_channel("nothing"), Nothing)
    finally:
        unregister_channel("nothing")
    assert "nothing" not in available_channels()


# -- a real SMTP server -------------------------------------------------------------------


class Mailbox:
    """An aiosmtpd handler that records what it accepts; some addresses are answered
    ``451`` on their first try, some always ``550``."""

    def __init__(self) -> None:
        self.received: list[tuple[str, list[str], EmailMessage]] = []
        self.flaky: set[str] = set()
        self.unknown: set[str] = set()
        self.rcpt_tries: Counter[str] = Counter()
        #: hang up on a connection's second message, as a server with an idle limit does
        self.one_per_connection = False
        self.sessions: list[Any] = []

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str,
                          mail_options: Any) -> str:
        if self.one_per_connection and session in self.sessions:
            server.transport.close()
            return "421 4.4.2 closing"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: Any) -> str:
        self.rcpt_tries[address] += 1
        if address in self.unknown:
            return "550 5.1.1 no such user"
        if address in self.flaky and self.rcpt_tries[address] == 1:
            return "451 4.3.0 try again"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = email.message_from_bytes(envelope.original_content, policy=policy.default)
        assert isinstance(msg, EmailMessage)
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos), msg))
        self.sessions.append(session)
        return "250 Message accepted for delivery"

    def to(self) -> Counter[str]:
        return Counter(r for _, rcpts, _ in self.received for r in rcpts)


def start_smtp(handler: Mailbox, port: int) -> Controller:
    c = Controller(handler, hostname="127.0.0.1", port=port, server_hostname="mail.test")
    c.start()
    return c


@pytest.fixture
def smtp_server() -> Iterator[tuple[Mailbox, int]]:
    box, port = Mailbox(), free_port()
    controller = start_smtp(box, port)
    yield box, port
    controller.stop()


def smtp_config(port: int, **extra: Any) -> dict[str, Any]:
    return {"host": "127.0.0.1", "port": port, "sender": "某某商城 <news@shop.test>",
            "local_hostname": "kehu.test", "timeout": 5, "batch_size": 2,
            "list_unsubscribe": "<mailto:unsubscribe@shop.test?subject={contact_id}>", **extra}


def mail(customer: str, address: str | None, name: str = "王芳") -> dict[str, Any]:
    return {"campaign_id": "SPRING", "customer_id": customer, "channel": "email",
            "recipient": address, "subject": f"{name}，春季会员专享", "payload": {"name": name},
            "body": f"{name}，您好：满200减30，本月有效。\n退订请回复 TD。"}


def test_smtp_campaign_reaches_a_real_server(store: AppStore,
                                             smtp_server: tuple[Mailbox, int]) -> None:
    box, port = smtp_server
    people = [("C1", "wang@example.com", "王芳"), ("C2", "li@example.com", "李强"),
              ("C3", "zhao@example.com", "赵敏")]
    assert enqueue(store, [mail(c, a, n) for c, a, n in people]).added == 3
    enqueue(store, [{**mail("C1", "13800000000"), "channel": "sms"}])  # not for e-mail
    channel = get_channel("smtp", smtp_config(port))
    report = deliver(store, channel, campaign_id="SPRING", actor="analyst1", **NO_WAIT)

    assert (report.attempted, report.sent, report.failed, report.retried) == (3, 3, 0, 0)
    assert report.pending == 0 and report.errors == []
    assert len(box.received) == 3
    by_rcpt = {rcpts[0]: (mail_from, msg) for mail_from, rcpts, msg in box.received}
    for customer, address, name in people:
        mail_from, msg = by_rcpt[address]
        assert mail_from == "news@shop.test"
        assert msg["Subject"] == f"{name}，春季会员专享"
        assert msg["From"].addresses[0].display_name == "某某商城"
        assert msg["To"].addresses[0].addr_spec == address
        assert msg["To"].addresses[0].display_name == name
        assert msg["Message-ID"].startswith(f"<SPRING-{customer}-email.")
        assert msg["List-Unsubscribe"] == (
            f"<mailto:unsubscribe@shop.test?subject=SPRING:{customer}:email>")
        assert msg.get_content_charset() == "utf-8"
        text = msg.get_content().replace("\r\n", "\n")  # CRLF on the wire
        assert text == f"{name}，您好：满200减30，本月有效。\n退订请回复 TD。\n"
    assert outbox_status(store) == {"email": {"pending": 0, "sent": 3, "failed": 0},
                                    "sms": {"pending": 1, "sent": 0, "failed": 0}}
    assert all(r.attempts == 1 and r.sent_at is not None
               for r in rows(store).values() if r.channel == "email")
    with pytest.raises(ValueError, match="The channel 'smtp' carries email messages, not 'sms'"):
        deliver(store, channel, message_channel="sms", **NO_WAIT)
    entry = audit_log(store)[0]
    assert (entry.actor, entry.action, entry.object_id) == ("analyst1", "deliver", "SPRING")
    assert entry.details is not None and entry.details["sent"] == 3
    # delivering again sends nothing twice
    assert deliver(store, channel, **NO_WAIT).attempted == 0
    assert len(box.received) == 3


def test_smtp_failures_are_retried_or_kept_with_the_reason(
        store: AppStore, smtp_server: tuple[Mailbox, int]) -> None:
    box, port = smtp_server
    box.flaky.add("busy@example.com")
    box.unknown.add("nobody@example.com")
    enqueue(store, [mail("C1", "ok@example.com"), mail("C2", "busy@example.com"),
                    mail("C3", "nobody@example.com"), mail("C4", None)])
    waits: list[float] = []
    report = deliver(store, get_channel("smtp", smtp_config(port)), max_attempts=3,
                     backoff_seconds=(1, 5, 30), sleep=waits.append)

    assert (report.attempted, report.sent, report.failed, report.retried) == (4, 2, 2, 1)
    assert waits == [1]  # one retry round for the 451
    assert box.to() == Counter({"ok@example.com": 1, "busy@example.com": 1})
    by_contact = rows(store)
    busy = by_contact["SPRING:C2:email"]
    assert (busy.status, busy.attempts) == ("sent", 2)
    assert "451 4.3.0 try again" in (busy.last_error or "")
    nobody = by_contact["SPRING:C3:email"]
    assert (nobody.status, nobody.attempts, nobody.next_attempt_at) == ("failed", 1, None)
    assert box.rcpt_tries["nobody@example.com"] == 1  # a 5xx is not retried

    failed = {f.customer_id: f for f in failures(store, "SPRING")}
    assert set(failed) == {"C3", "C4"}
    assert "550 5.1.1 no such user" in (failed["C3"].error or "")
    assert not failed["C3"].retryable and failed["C3"].attempts == 1
    assert "No e-mail address for customer C4" in (failed["C4"].error or "")
    assert {(oid, cid) for oid, cid, _ in report.errors} == {
        (failed["C3"].outbox_id, "C3"), (failed["C4"].outbox_id, "C4")}

    # permanent failures are never retried on their own, only when asked to
    channel = get_channel("smtp", smtp_config(port))
    assert deliver(store, channel, **NO_WAIT).attempted == 0
    assert retry_failed(store, channel, "SPRING", **NO_WAIT).attempted == 0
    with store.session() as s:
        row = s.get(OutboxMessage, failed["C3"].outbox_id)
        assert row is not None
        row.recipient = "zhao@example.com"  # the address was corrected
    again = retry_failed(store, channel, "SPRING", include_permanent=True, **NO_WAIT)
    assert (again.attempted, again.sent, again.failed) == (2, 1, 1)
    assert rows(store)["SPRING:C3:email"].attempts == 2
    assert outbox_status(store) == {"email": {"pending": 0, "sent": 3, "failed": 1}}


def test_smtp_reconnects_when_the_server_hangs_up(smtp_server: tuple[Mailbox, int]) -> None:
    box, port = smtp_server
    box.one_per_connection = True
    channel = get_channel("smtp", smtp_config(port, batch_size=10))
    msgs = [Message(channel="email", contact_id=f"K{i}", recipient=f"k{i}@example.com",
                    subject="测试", body="内容") for i in range(3)]
    assert channel.send(msgs) == [SendResult(ok=True)] * 3
    assert box.to() == Counter({f"k{i}@example.com": 1 for i in range(3)})
    assert len({id(s) for s in box.sessions}) == 3  # one message a connection, none lost


def test_smtp_server_down_then_up_nothing_lost_nothing_twice(store: AppStore) -> None:
    port = free_port()  # nothing listens here yet
    enqueue(store, [mail(f"C{i}", f"u{i}@example.com") for i in range(5)])
    channel = get_channel("smtp", smtp_config(port, timeout=2))
    waits: list[float] = []
    report = deliver(store, channel, max_attempts=3, sleep=waits.append)

    assert (report.attempted, report.sent, report.failed, report.retried) == (5, 0, 5, 10)
    assert waits == [1, 5]
    assert all("Cannot reach the SMTP server 127.0.0.1" in err for _, _, err in report.errors)
    assert all(f.retryable and f.attempts == 3 for f in failures(store))
    assert outbox_status(store)["email"]["failed"] == 5  # kept, with their error

    box = Mailbox()
    controller = start_smtp(box, port)
    try:
        again = retry_failed(store, channel, "SPRING", **NO_WAIT)
        assert (again.attempted, again.sent, again.failed) == (5, 5, 0)
        assert box.to() == Counter({f"u{i}@example.com": 1 for i in range(5)})
        assert deliver(store, channel, **NO_WAIT).attempted == 0
        assert len(box.received) == 5
    finally:
        controller.stop()
    assert all(r.attempts == 4 and r.status == "sent" for r in rows(store).values())


# -- a real HTTP server -------------------------------------------------------------------

SECRET = "s3cret-键"


class Gateway(ThreadingHTTPServer):
    """An SMS gateway: checks the signature, answers by path (/ok, /flaky: 503 the first
    time per idempotency key, /bad: 400)."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), GatewayHandler)
        self.requests: list[dict[str, Any]] = []
        self.keys: Counter[str] = Counter()
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class GatewayHandler(BaseHTTPRequestHandler):
    server: Gateway

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        signed = hmac.compare_digest(self.headers.get("X-Kehu-Signature", ""), expected)
        key = self.headers.get("Idempotency-Key", "")
        with self.server.lock:
            self.server.keys[key] += 1
            first = self.server.keys[key] == 1
            self.server.requests.append({"path": self.path, "signed": signed, "key": key,
                                         "auth": self.headers.get("Authorization"),
                                         "tenant": self.headers.get("X-Tenant"),
                                         "json": json.loads(body.decode("utf-8"))})
        if not signed:
            status = 401
        elif self.path == "/bad":
            status = 400
        elif self.path == "/flaky" and first:
            status = 503
        else:
            status = 200
        answer = json.dumps({"status": status, "message": "收到" if status == 200 else "错误"},
                            ensure_ascii=False)
        data = answer.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def gateway() -> Iterator[Gateway]:
    server = Gateway()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def sms(customer: str, campaign: str = "SMS1") -> dict[str, Any]:
    return {"campaign_id": campaign, "customer_id": customer, "channel": "sms",
            "recipient": f"1380000{customer[-4:]:0>4}", "body": "王芳，您好：满200减30",
            "payload": {"name": "王芳", "offer": "满200减30"}}


def hook(url: str, **extra: Any) -> Channel[Any]:
    return get_channel("webhook", {"url": url, "secret": SECRET, "bearer_token": "tok",
                                   "headers": {"X-Tenant": "shop-01"}, "use_proxy": False,
                                   "timeout": 5, **extra})


def test_webhook_posts_signed_json(store: AppStore, gateway: Gateway) -> None:
    enqueue(store, [sms("C0001"), sms("C0002")])
    report = deliver(store, hook(gateway.url + "/ok"), **NO_WAIT)
    assert (report.attempted, report.sent, report.failed) == (2, 2, 0)
    assert len(gateway.requests) == 2
    first = gateway.requests[0]
    assert first["signed"] and first["auth"] == "Bearer tok" and first["tenant"] == "shop-01"
    assert first["key"] == "SMS1:C0001:sms"
    assert first["json"] == {"contact_id": "SMS1:C0001:sms", "campaign_id": "SMS1",
                             "customer_id": "C0001", "channel": "sms",
                             "recipient": "13800000001", "subject": None,
                             "body": "王芳，您好：满200减30",
                             "payload": {"name": "王芳", "offer": "满200减30"}}


def test_webhook_retries_a_503_and_keeps_a_400(store: AppStore, gateway: Gateway) -> None:
    enqueue(store, [sms("C0001", "A"), sms("C0002", "A"), sms("C0003", "B")])
    flaky = deliver(store, hook(gateway.url + "/flaky"), campaign_id="A", **NO_WAIT)
    assert (flaky.attempted, flaky.sent, flaky.failed, flaky.retried) == (2, 2, 0, 2)
    assert gateway.keys["A:C0001:sms"] == 2  # the same idempotency key on the retry
    assert all(r.attempts == 2 for r in rows(store).values() if r.campaign_id == "A")

    bad = deliver(store, hook(gateway.url + "/bad"), campaign_id="B", **NO_WAIT)
    assert (bad.attempted, bad.sent, bad.failed, bad.retried) == (1, 0, 1, 0)
    (failure,) = failures(store, "B")
    assert not failure.retryable and failure.attempts == 1
    assert "HTTP 400" in (failure.error or "") and "错误" in (failure.error or "")

    wrong_key = get_channel("webhook", {"url": gateway.url + "/ok", "secret": "wrong",
                                        "use_proxy": False})
    assert wrong_key.send([Message(channel="sms", contact_id="x")])[0].error is not None


def test_webhook_batches_and_unreachable_gateway(gateway: Gateway) -> None:
    ch = hook(gateway.url + "/ok", batch=2)
    msgs = [Message(channel="sms", contact_id=f"K{i}", recipient=str(i)) for i in range(3)]
    assert [r.ok for r in ch.send(msgs)] == [True, True, True]
    assert [len(r["json"]) for r in gateway.requests] == [2, 1]
    assert all(r["key"].startswith("batch-") for r in gateway.requests)

    down = hook(f"http://127.0.0.1:{free_port()}/ok").send(msgs[:1])[0]
    assert not down.ok and down.retryable and "Cannot reach" in (down.error or "")


# -- files --------------------------------------------------------------------------------


def test_file_channel_writes_a_call_list_excel_opens(store: AppStore, tmp_path: Path) -> None:
    calls = [{"campaign_id": "WINBACK", "customer_id": f"C{i}", "channel": "phone",
              "recipient": f"1390000000{i}", "body": "回访话术：您好，感谢您…",
              "payload": {"name": name, "offer": "满200减30", "manager": "=HYPERLINK(1)"}}
             for i, name in enumerate(["王芳", "李强", "赵敏"])]
    enqueue(store, calls)
    ch = get_channel("file", {"path": str(tmp_path / "lists")})
    report = deliver(store, ch, campaign_id="WINBACK", **NO_WAIT)
    assert (report.attempted, report.sent) == (3, 3)
    (path,) = (tmp_path / "lists").iterdir()
    assert path.name.startswith("WINBACK-phone-") and path.suffix == ".csv"
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")  # BOM: Excel reads UTF-8
    df = pd.read_csv(path, encoding="utf-8-sig", dtype=str, keep_default_na=False)
    assert list(df.columns) == ["客户编号", "活动编号", "触达编号", "渠道", "收件人", "标题",
                                "内容", "姓名", "优惠", "客户经理"]
    assert df["姓名"].tolist() == ["王芳", "李强", "赵敏"]
    assert df["收件人"].tolist() == ["13900000000", "13900000001", "13900000002"]
    assert df["客户经理"].tolist() == ["'=HYPERLINK(1)"] * 3  # never a formula
    assert outbox_status(store, "WINBACK") == {"phone": {"pending": 0, "sent": 3, "failed": 0}}


def test_file_channel_xlsx_and_english_headers(tmp_path: Path) -> None:
    from openpyxl import load_workbook

    ch = get_channel("file", {"path": str(tmp_path), "format": "xlsx", "headers": "en"})
    msgs = [Message(channel="mail", campaign_id="DM/1", customer_id="C1", contact_id="c1",
                    recipient="上海市徐汇区1号", payload={"name": "王芳", "extra": "=1+1"})]
    assert ch.send(msgs) == [SendResult(ok=True)]
    (path,) = tmp_path.iterdir()
    assert path.name.startswith("DM_1-mail-") and path.suffix == ".xlsx"
    ws = load_workbook(path).active
    assert ws is not None
    values = [[c.value for c in row] for row in ws.iter_rows()]
    assert values[0] == ["Customer ID", "Campaign ID", "Contact ID", "Channel", "Recipient",
                         "Subject", "Body", "Name", "extra"]
    assert values[1][:5] == ["C1", "DM/1", "c1", "mail", "上海市徐汇区1号"]
    assert values[1][-2:] == ["王芳", "=1+1"]
    assert ws.cell(2, 9).data_type == "s"  # text, not a formula


# -- the outbox itself --------------------------------------------------------------------


def test_enqueue_is_idempotent(store: AppStore) -> None:
    first = enqueue(store, [sms("C0001"), sms("C0002"), sms("C0002")], actor="launcher")
    assert (first.added, first.already_queued) == (2, 1)
    again = enqueue(store, [Message(campaign_id="SMS1", customer_id="C0001", channel="sms"),
                            sms("C0003")])
    assert (again.added, again.already_queued) == (1, 1)
    assert sorted(rows(store)) == ["SMS1:C0001:sms", "SMS1:C0002:sms", "SMS1:C0003:sms"]
    assert audit_log(store)[-1].actor == "launcher"
    # what a data frame row holds: NaN, NA, NaT, numpy numbers, dates
    odd = {"offer": float("nan"), "tier": pd.NA, "since": pd.Timestamp("2026-03-01"),
           "visits": np.int64(3), "score": np.float64(0.5), "end": pd.NaT}
    enqueue(store, [{**sms("C0009"), "payload": odd, "recipient": float("nan")}])
    row = rows(store)["SMS1:C0009:sms"]
    assert row.payload == {"offer": None, "tier": None, "since": "2026-03-01T00:00:00",
                           "visits": 3, "score": 0.5, "end": None}
    assert row.recipient is None
    with pytest.raises(ValueError, match="Message 1: unknown field"):
        enqueue(store, [{"channel": "sms", "customer_id": "x", "phone": "1"}])
    with pytest.raises(ValueError, match="'recipient' has 400 characters, at most 320"):
        enqueue(store, [{"channel": "sms", "customer_id": "x", "recipient": "1" * 400}])


def test_fifty_thousand_messages_enqueue_in_bulk(tmp_path: Path) -> None:
    store = AppStore(f"sqlite:///{tmp_path / 'big.db'}")
    store.upgrade()
    messages = ({"campaign_id": "BIG", "customer_id": f"C{i:06d}", "channel": "sms",
                 "recipient": f"139{i:08d}", "body": "您好", "payload": {"name": "客户"}}
                for i in range(50_000))
    started = time.perf_counter()
    report = enqueue(store, messages)
    elapsed = time.perf_counter() - started
    assert (report.added, report.already_queued) == (50_000, 0), elapsed
    assert outbox_status(store) == {"sms": {"pending": 50_000, "sent": 0, "failed": 0}}
    again = enqueue(store, ({"campaign_id": "BIG", "customer_id": f"C{i:06d}", "channel": "sms"}
                            for i in range(49_990, 50_010)))
    assert (again.added, again.already_queued) == (10, 10)
    # the default channel hands them over to an external sender and changes nothing
    handed = deliver(store, get_channel("outbox"), campaign_id="BIG", **NO_WAIT)
    assert (handed.handed_over, handed.sent, handed.pending) == (50_010, 0, 50_010)
    store.dispose()


def test_external_sender_claims_and_acknowledges(store: AppStore) -> None:
    enqueue(store, [sms(f"C{i:04d}") for i in range(5)])
    first = claim_pending(store, limit=3)
    second = claim_pending(store, limit=3)
    assert [m.customer_id for m in first] == ["C0000", "C0001", "C0002"]
    assert [m.customer_id for m in second] == ["C0003", "C0004"]  # no message twice
    assert first[0].payload == {"name": "王芳", "offer": "满200减30"}
    assert claim_pending(store) == []
    assert mark_sent(store, [m.outbox_id for m in first if m.outbox_id]) == 3
    assert mark_failed(store, second[0].outbox_id or 0, "网关繁忙", retry_in_seconds=0) == 1
    assert mark_failed(store, second[1].outbox_id or 0, "空号", retryable=False) == 1
    # the retryable one is due again at once; the permanent one is not handed out
    assert [m.customer_id for m in claim_pending(store)] == ["C0003"]
    # a claim that runs out comes back (a sender that crashed)
    assert [m.customer_id for m in claim_pending(store, lease_seconds=0)] == []
    enqueue(store, [sms("C0100")])
    assert [m.customer_id for m in claim_pending(store, lease_seconds=0)] == ["C0100"]
    assert [m.customer_id for m in claim_pending(store)] == ["C0100"]
    assert outbox_status(store)["sms"] == {"pending": 2, "sent": 3, "failed": 1}


def test_concurrent_senders_never_get_the_same_message(store: AppStore) -> None:
    enqueue(store, [sms(f"C{i:04d}") for i in range(120)])
    got: list[list[int]] = [[] for _ in range(4)]

    def sender(k: int) -> None:
        while batch := claim_pending(store, limit=7):
            got[k].extend(m.outbox_id or 0 for m in batch)

    threads = [threading.Thread(target=sender, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    claimed = [i for ids in got for i in ids]
    assert len(claimed) == len(set(claimed)) == 120


class Crash(BaseException):
    """A process killed mid-send."""


class Fragile(Channel[NoSettings]):
    """Fails the way a buggy or dying plugin does."""

    name = "fragile"
    config_model = NoSettings
    mode = "raise"

    @property
    def batch_size(self) -> int | None:
        return 2

    def send(self, messages: Any) -> list[SendResult]:
        if self.mode == "crash":
            raise Crash
        if self.mode == "raise":
            raise RuntimeError("plugin bug")
        if self.mode == "short":
            return []
        return [SendResult.success() for _ in messages]


def test_a_crash_or_a_broken_plugin_loses_nothing(store: AppStore) -> None:
    enqueue(store, [sms(f"C{i:04d}") for i in range(3)])
    ch = Fragile()
    ch.mode = "crash"
    with pytest.raises(Crash):
        deliver(store, ch, lease_seconds=0, **NO_WAIT)
    assert outbox_status(store)["sms"] == {"pending": 3, "sent": 0, "failed": 0}

    ch.mode = "raise"
    report = deliver(store, ch, max_attempts=2, **NO_WAIT)
    assert (report.attempted, report.failed, report.retried) == (3, 3, 3)
    assert all("plugin bug" in err for _, _, err in report.errors)
    ch.mode = "short"
    report = retry_failed(store, ch, max_attempts=1, **NO_WAIT)
    assert report.failed == 3 and "answered 0 results for 2 messages" in report.errors[0][2]

    ch.mode = "ok"
    report = retry_failed(store, ch, **NO_WAIT)
    assert (report.attempted, report.sent) == (3, 3)
    assert all(r.attempts == 4 for r in rows(store).values())
