"""The outbox: every campaign message is written here before any send is tried, then
delivered through a channel plugin with retries. A message is never lost: a crash leaves it
``pending`` (or ``failed`` with its error), a refused send stays ``failed`` with the reason.

* :func:`enqueue` — write messages, idempotently by ``contact_id`` (a re-launch adds nothing
  twice), in bulk.
* :func:`deliver` — send what is pending (and retryable failures now due) through a
  :class:`~kehu.campaigns.channels.Channel`, retrying within the call; one audit entry.
* :func:`retry_failed` — put failed messages back and deliver again.
* :func:`outbox_status`, :func:`failures` — what happened.
* :func:`claim_pending`, :func:`mark_sent`, :func:`mark_failed` — for an external sender
  that reads the table itself (the ``outbox`` channel).

How a row moves: ``pending`` → ``sent``; or → ``failed`` with ``last_error``. A failed row
whose ``next_attempt_at`` is set may pass later and is picked up again by :func:`deliver` once
that time has come; a permanent failure (unknown mailbox, 4xx of a webhook) has no
``next_attempt_at`` and waits for :func:`retry_failed` ``(include_permanent=True)``, e.g. after
the address was corrected. A pending row with a future ``next_attempt_at`` is claimed (being
sent); if its sender dies the claim runs out and the row is handed out again.

>>> from kehu.store.db import AppStore
>>> store = AppStore("sqlite://"); store.upgrade()
>>> enqueue(store, [{"campaign_id": "C1", "customer_id": "A", "channel": "sms",
...                  "recipient": "13800000000", "body": "您好"}])
EnqueueReport(added=1, already_queued=0)
>>> enqueue(store, [{"campaign_id": "C1", "customer_id": "A", "channel": "sms"}])
EnqueueReport(added=0, already_queued=1)
>>> outbox_status(store)
{'sms': {'pending': 1, 'sent': 0, 'failed': 0}}
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, func, insert, or_, select, update
from sqlalchemy.engine import Connection

from kehu.campaigns.channels import Channel, Message, SendResult
from kehu.errors import KehuInputError
from kehu.i18n import _
from kehu.store.db import AppStore
from kehu.store.models import OutboxMessage
from kehu.store.services import record

OUTBOX = cast(Table, OutboxMessage.__table__)
Backoff = Sequence[float] | Callable[[int], float]
MessageLike = Message | Mapping[str, Any]

_MESSAGE_FIELDS = {f.name for f in fields(Message)}
_LIMITS = {
    "contact_id": 120,
    "campaign_id": 80,
    "customer_id": 80,
    "channel": 40,
    "recipient": 320,
    "subject": 500,
}
_CHUNK = 2000


def _missing(value: Any) -> bool:
    """None, NaN, NaT or pandas' NA (what a data frame row holds for "no value")."""
    if value is None:
        return True
    try:
        return bool(value != value)
    except (TypeError, ValueError):
        return True  # pd.NA refuses to be a bool


def _json_safe(value: Any) -> Any:
    """``value`` as JSON the app store accepts on every backend: no NaN (PostgreSQL refuses
    it), dates as ISO text, numpy scalars as numbers, anything else as text.

    >>> import math, datetime
    >>> _json_safe({"a": math.nan, "d": datetime.date(2026, 3, 1), "l": (1, "x")})
    {'a': None, 'd': '2026-03-01', 'l': [1, 'x']}
    """
    if isinstance(value, str | bool | int):
        return value
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if getattr(value, "ndim", 0):  # numpy arrays
        return _json_safe(value.tolist())
    if not isinstance(value, set | frozenset | bytes) and _missing(value):
        return None
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalars
        return _json_safe(value.item())
    return str(value)


# -- templates ------------------------------------------------------------------------------


_TOKEN = re.compile(r"\{\{|\}\}|\{([A-Za-z_]\w*)(?::([^{}]*))?\}")


def render(template: str, fields: Mapping[str, Any]) -> str:
    """``template`` with ``{name}``-style placeholders (optionally ``{amount:.2f}``) filled
    from ``fields``; ``{{`` and ``}}`` are literal braces. A missing field stays visible as
    ``{field}``, None is filled as an empty text, and nothing ever raises: anything else in
    braces (``{0}``, ``{a.b}``, a lone ``{``) is left as written, so a template cannot reach
    into the values' attributes.

    >>> render("{name}，您好：{offer}", {"name": "王芳", "offer": "满200减30"})
    '王芳，您好：满200减30'
    >>> render("{name}，您好：{offer}", {"name": "王芳"})
    '王芳，您好：{offer}'
    >>> render("{amount:.2f} 元 {{x}} {0} {name.upper} {name", {"amount": 12.5, "name": "A"})
    '12.50 元 {x} {0} {name.upper} {name'
    """

    def one(m: re.Match[str]) -> str:
        if m[1] is None:
            return m[0][0]
        if m[1] not in fields:
            return m[0]
        value = fields[m[1]]
        if value is None:
            return ""
        try:
            return format(value, m[2] or "")
        except (ValueError, TypeError):
            return str(value)

    return _TOKEN.sub(one, template)


# -- reports --------------------------------------------------------------------------------


@dataclass(frozen=True)
class EnqueueReport:
    added: int
    already_queued: int


@dataclass
class DeliveryReport:
    """What one :func:`deliver` call did. ``attempted`` messages were tried, ``sent`` went
    out, ``failed`` ended this call failed (``errors`` names them), ``retried`` counts the
    extra attempts made within the call, ``pending`` is what is still pending afterwards
    (beyond ``limit``, claimed by another sender, or left for an external sender —
    ``handed_over`` counts those when the channel is the outbox itself)."""

    channel: str
    attempted: int = 0
    sent: int = 0
    failed: int = 0
    retried: int = 0
    pending: int = 0
    handed_over: int = 0
    errors: list[tuple[int, str | None, str]] = field(default_factory=list)

    def counts(self) -> dict[str, Any]:
        out = asdict(self)
        out["errors"] = len(self.errors)
        return out


@dataclass(frozen=True)
class Failure:
    """A failed message: its error, attempts and whether it is retried automatically."""

    outbox_id: int
    contact_id: str | None
    campaign_id: str | None
    customer_id: str | None
    channel: str
    recipient: str | None
    attempts: int
    error: str | None
    retryable: bool
    next_attempt_at: datetime | None


# -- enqueue --------------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC)


def _row(item: MessageLike, position: int) -> dict[str, Any]:
    if isinstance(item, Message):
        data = {k: getattr(item, k) for k in _MESSAGE_FIELDS}
    elif isinstance(item, Mapping):
        unknown = sorted(set(item) - _MESSAGE_FIELDS)
        if unknown:
            raise KehuInputError(
                _("Message {n}: unknown field(s) {fields}; a message has {known}.").format(
                    n=position, fields=", ".join(unknown), known=", ".join(sorted(_MESSAGE_FIELDS))
                )
            )
        data = dict(item)
    else:
        raise KehuInputError(
            _("Message {n}: expected a Message or a dict, got {type}.").format(
                n=position, type=type(item).__name__
            )
        )
    data.pop("outbox_id", None)
    if not data.get("channel"):
        raise KehuInputError(_("Message {n}: the field 'channel' is required.").format(n=position))
    if not data.get("contact_id"):
        if not data.get("customer_id"):
            raise KehuInputError(
                _(
                    "Message {n}: give a contact_id or a customer_id (the "
                    "contact id is then campaign:customer:channel)."
                ).format(n=position)
            )
        data["contact_id"] = (
            f"{data.get('campaign_id') or ''}:{data['customer_id']}:{data['channel']}"
        )
    for key, limit in _LIMITS.items():
        value = data.get(key)
        if isinstance(value, float) and _missing(value):
            value = data[key] = None
        if value is not None:
            value = data[key] = str(value)
            if len(value) > limit:
                raise KehuInputError(
                    _(
                        "Message {n} ({contact}): '{field}' has {length} "
                        "characters, at most {limit} fit."
                    ).format(
                        n=position,
                        contact=data["contact_id"],
                        field=key,
                        length=len(value),
                        limit=limit,
                    )
                )
    payload = data.get("payload") or {}
    if not isinstance(payload, Mapping):
        raise KehuInputError(
            _("Message {n}: 'payload' must be a dict of fields, got {type}.").format(
                n=position, type=type(payload).__name__
            )
        )
    # JSON-safe (NaN, dates, numpy numbers) so one odd value cannot fail a whole chunk
    data["payload"] = _json_safe(payload)
    # every row has every column: one executemany needs the same keys throughout
    row = {k: data.get(k) for k in _MESSAGE_FIELDS if k != "outbox_id"}
    row.update(status="pending", attempts=0)
    return row


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for x in items:
        chunk.append(x)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _insert_ignoring_duplicates(conn: Connection, rows: list[dict[str, Any]]) -> None:
    dialect = conn.dialect.name
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        conn.execute(
            sqlite_insert(OUTBOX).on_conflict_do_nothing(index_elements=["contact_id"]), rows
        )
    elif dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        # psycopg pipelines the executemany (multi-row VALUES measured slower: psycopg
        # re-parses each long statement)
        conn.execute(pg_insert(OUTBOX).on_conflict_do_nothing(index_elements=["contact_id"]), rows)
    else:
        conn.execute(insert(OUTBOX), rows)


def enqueue(
    store: AppStore,
    messages: Iterable[MessageLike],
    *,
    actor: str = "system",
    chunk_size: int = 5000,
) -> EnqueueReport:
    """Write ``messages`` (``Message`` objects or dicts with its fields) to the outbox as
    pending. Idempotent by ``contact_id`` (derived as ``campaign:customer:channel`` when
    missing): a message already queued — or repeated in ``messages`` — is counted in
    ``already_queued`` and not written again. Bulk inserts of ``chunk_size`` rows, each chunk
    its own transaction; one audit entry."""
    if chunk_size < 1:
        raise KehuInputError(
            _("The '{name}' parameter must be an int >= 1. Got {v} instead.").format(
                name="chunk_size", v=chunk_size
            )
        )
    added = already = 0
    campaigns: set[str] = set()
    seen: set[str] = set()
    position = 0
    with store.engine.connect() as conn:
        for chunk in _chunks(messages, chunk_size):
            rows = []
            for item in chunk:
                position += 1
                row = _row(item, position)
                if row["contact_id"] in seen:
                    already += 1
                    continue
                seen.add(row["contact_id"])
                rows.append(row)
            ids = [r["contact_id"] for r in rows]
            with conn.begin():
                existing: set[str] = set()
                for part in _chunks(ids, _CHUNK):
                    existing.update(
                        conn.scalars(
                            select(OUTBOX.c.contact_id).where(OUTBOX.c.contact_id.in_(part))
                        )
                    )
                new = [r for r in rows if r["contact_id"] not in existing]
                if new:
                    _insert_ignoring_duplicates(conn, new)
            added += len(new)
            already += len(rows) - len(new)
            campaigns.update(r["campaign_id"] for r in new if r.get("campaign_id"))
    if added:
        record(
            store,
            actor,
            "enqueue",
            "outbox",
            object_id=",".join(sorted(campaigns))[:80] or None,
            details={
                "added": added,
                "already_queued": already,
                "campaigns": sorted(campaigns)[:20],
            },
        )
    return EnqueueReport(added=added, already_queued=already)


# -- claiming and acknowledging (also for external senders) ---------------------------------


def _message(row: Any) -> Message:
    return Message(
        outbox_id=row.id,
        contact_id=row.contact_id,
        campaign_id=row.campaign_id,
        customer_id=row.customer_id,
        channel=row.channel,
        recipient=row.recipient,
        subject=row.subject,
        body=row.body,
        payload=dict(row.payload or {}),
    )


def _scope(campaign_id: str | None, message_channel: str | None) -> list[Any]:
    where = []
    if campaign_id is not None:
        where.append(OUTBOX.c.campaign_id == campaign_id)
    if message_channel is not None:
        where.append(OUTBOX.c.channel == message_channel)
    return where


def _channel_scope(
    channel: Channel[Any], campaign_id: str | None, message_channel: str | None
) -> list[Any]:
    """The rows ``channel`` may take: of the campaign, of the message channel asked for, and
    only of those message channels the channel carries."""
    carries = channel.message_channels
    if message_channel is not None and carries is not None and message_channel not in carries:
        raise KehuInputError(
            _(
                "The channel '{channel}' carries {carries} messages, not '{message_channel}'."
            ).format(
                channel=channel.name, carries=", ".join(carries), message_channel=message_channel
            )
        )
    scope = _scope(campaign_id, message_channel)
    if message_channel is None and carries is not None:
        scope.append(OUTBOX.c.channel.in_(carries))
    return scope


def _claim(
    store: AppStore, where: Sequence[Any], limit: int | None, lease_seconds: float
) -> list[Message]:
    """Atomically mark the rows matching ``where`` as claimed (pending with a lease) and
    return them; rows another sender holds are skipped (``SKIP LOCKED`` on PostgreSQL, a
    single writer on SQLite)."""
    now = _now()
    pick = select(OUTBOX.c.id).where(*where).order_by(OUTBOX.c.id)
    if limit is not None:
        pick = pick.limit(limit)
    pick = pick.with_for_update(skip_locked=True)
    stmt = (
        update(OUTBOX)
        .where(OUTBOX.c.id.in_(pick.scalar_subquery()))
        .values(status="pending", next_attempt_at=now + timedelta(seconds=lease_seconds))
        .returning(*OUTBOX.c)
    )
    with store.engine.begin() as conn:
        rows = conn.execute(stmt).all()
    return sorted((_message(r) for r in rows), key=lambda m: m.outbox_id or 0)


def _due(now: datetime) -> Any:
    """Pending and not claimed, or failed-retryable with its next attempt due.

    Written so that no OR branch can use the status index on its own: SQLite then walks
    the primary key from the last claimed id (claims go in id order) instead of collecting
    and sorting every pending row for each batch."""
    return and_(
        OUTBOX.c.status != "sent",
        or_(
            and_(OUTBOX.c.status == "pending", OUTBOX.c.next_attempt_at.is_(None)),
            OUTBOX.c.next_attempt_at <= now,
        ),
    )


def claim_pending(
    store: AppStore,
    *,
    limit: int = 100,
    campaign_id: str | None = None,
    message_channel: str | None = None,
    lease_seconds: float = 300,
) -> list[Message]:
    """Take up to ``limit`` messages to send (pending ones, and failed ones due for a retry),
    oldest first, for ``lease_seconds``: another caller does not get them meanwhile. Report
    each with :func:`mark_sent` or :func:`mark_failed`; one not reported is handed out again
    when the lease ends."""
    if limit < 1:
        raise KehuInputError(
            _("The '{name}' parameter must be an int >= 1. Got {v} instead.").format(
                name="limit", v=limit
            )
        )
    where = [_due(_now()), *_scope(campaign_id, message_channel)]
    return _claim(store, where, limit, lease_seconds)


def _ids(outbox_ids: int | Iterable[int]) -> list[int]:
    return [outbox_ids] if isinstance(outbox_ids, int) else [int(i) for i in outbox_ids]


def mark_sent(store: AppStore, outbox_ids: int | Iterable[int]) -> int:
    """Record messages as sent (one attempt more); returns how many rows changed."""
    ids = _ids(outbox_ids)
    with store.engine.begin() as conn:
        return _mark_sent(conn, ids, _now())


def _mark_sent(conn: Connection, ids: list[int], now: datetime) -> int:
    n = 0
    for part in _chunks(ids, _CHUNK):
        n += conn.execute(
            update(OUTBOX)
            .where(OUTBOX.c.id.in_(part), OUTBOX.c.status != "sent")
            .values(
                status="sent", sent_at=now, attempts=OUTBOX.c.attempts + 1, next_attempt_at=None
            )
        ).rowcount
    return n


def mark_failed(
    store: AppStore,
    outbox_ids: int | Iterable[int],
    error: str,
    *,
    retryable: bool = True,
    retry_in_seconds: float = 60,
) -> int:
    """Record a failed attempt: ``retryable`` ones are handed out again after
    ``retry_in_seconds``; permanent ones wait for :func:`retry_failed`. Returns the number of
    rows changed (a row already sent is left alone)."""
    ids = _ids(outbox_ids)
    due = _now() + timedelta(seconds=retry_in_seconds) if retryable else None
    with store.engine.begin() as conn:
        return _mark_failed(conn, [(i, error, due) for i in ids])


def _mark_failed(conn: Connection, items: list[tuple[int, str, datetime | None]]) -> int:
    if not items:
        return 0
    stmt = (
        update(OUTBOX)
        .where(OUTBOX.c.id == bindparam("oid"), OUTBOX.c.status != "sent")
        .values(
            status="failed",
            attempts=OUTBOX.c.attempts + 1,
            last_error=bindparam("err"),
            next_attempt_at=bindparam("due"),
        )
    )
    rows = [{"oid": i, "err": (e or "")[:4000], "due": d} for i, e, d in items]
    result = conn.execute(stmt, rows)
    return result.rowcount if result.rowcount >= 0 else len(rows)


# -- delivering -----------------------------------------------------------------------------


def _delay(backoff: Backoff, attempt: int) -> float:
    if callable(backoff):
        return float(backoff(attempt))
    seq = list(backoff) or [0.0]
    return float(seq[min(attempt - 1, len(seq) - 1)])


def _send(channel: Channel[Any], batch: Sequence[Message]) -> list[SendResult]:
    """``channel.send`` that never raises (an unexpected error fails the batch, retryable)
    and always answers once per message."""
    try:
        results = list(channel.send(batch))
    except Exception as exc:
        err = _("The channel '{channel}' failed: {err}").format(
            channel=channel.name, err=f"{exc.__class__.__name__}: {exc}"
        )
        return [SendResult.failure(err, retryable=True)] * len(batch)
    if len(results) != len(batch):
        err = _(
            "The channel '{channel}' answered {got} results for {n} messages; none is "
            "counted as sent."
        ).format(channel=channel.name, got=len(results), n=len(batch))
        return [SendResult.failure(err, retryable=True)] * len(batch)
    return results


def _count(store: AppStore, where: Sequence[Any]) -> int:
    with store.engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(OUTBOX).where(*where)) or 0)


def deliver(
    store: AppStore,
    channel: Channel[Any],
    *,
    campaign_id: str | None = None,
    message_channel: str | None = None,
    max_attempts: int = 3,
    backoff_seconds: Backoff = (1, 5, 30),
    sleep: Callable[[float], Any] = time.sleep,
    limit: int | None = None,
    lease_seconds: float = 900,
    actor: str = "system",
) -> DeliveryReport:
    """Send the pending messages (of ``campaign_id`` / ``message_channel`` when given, and
    only those the channel carries, e.g. ``email`` for ``smtp``; and failed ones due for a
    retry) through ``channel``, in its batches, oldest first, at most ``limit``.

    A retryable failure is tried again in this call, up to ``max_attempts`` attempts, after
    waiting ``backoff_seconds[k-1]`` (or ``backoff_seconds(k)``) following attempt k; when
    attempts run out it stays failed and due again after the last wait. A permanent failure
    is failed at once and never retried automatically. Every result is written as soon as it
    is known, so a crash leaves rows pending or failed, never lost (a claimed row comes back
    after ``lease_seconds``). One audit entry records the counts.
    """
    if max_attempts < 1:
        raise KehuInputError(
            _("The '{name}' parameter must be an int >= 1. Got {v} instead.").format(
                name="max_attempts", v=max_attempts
            )
        )
    if limit is not None and limit < 1:
        raise KehuInputError(
            _("The '{name}' parameter must be an int >= 1. Got {v} instead.").format(
                name="limit", v=limit
            )
        )
    scope = _channel_scope(channel, campaign_id, message_channel)
    report = DeliveryReport(channel=channel.name)
    if channel.external_delivery:
        report.handed_over = report.pending = _count(store, [OUTBOX.c.status == "pending", *scope])
    else:
        retry_ids = _first_round(
            store, channel, report, scope, limit, max_attempts, backoff_seconds, lease_seconds
        )
        attempt = 1
        while retry_ids and attempt < max_attempts:
            sleep(_delay(backoff_seconds, attempt))
            attempt += 1
            # take back exactly the rows this call scheduled (unless someone else did)
            batch_all: list[Message] = []
            for part in _chunks(retry_ids, _CHUNK):
                batch_all += _claim(
                    store,
                    [
                        OUTBOX.c.id.in_(part),
                        OUTBOX.c.status == "failed",
                        OUTBOX.c.next_attempt_at.is_not(None),
                    ],
                    None,
                    lease_seconds,
                )
            report.retried += len(batch_all)
            retry_ids = []
            for batch in _batches(batch_all, channel.batch_size):
                retry_ids += _send_and_record(
                    store, channel, batch, report, attempt, max_attempts, backoff_seconds
                )
        report.pending = _count(store, [OUTBOX.c.status == "pending", *scope])
    record(
        store,
        actor,
        "deliver",
        "outbox",
        object_id=campaign_id,
        details={
            **report.counts(),
            "message_channel": message_channel,
            "max_attempts": max_attempts,
        },
    )
    return report


def _batches(items: Sequence[Message], size: int | None) -> Iterator[Sequence[Message]]:
    if not size:
        if items:
            yield items
        return
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _first_round(
    store: AppStore,
    channel: Channel[Any],
    report: DeliveryReport,
    scope: list[Any],
    limit: int | None,
    max_attempts: int,
    backoff: Backoff,
    lease_seconds: float,
) -> list[int]:
    size = channel.batch_size
    retry_ids: list[int] = []
    last_id = 0
    while limit is None or report.attempted < limit:
        room = None if limit is None else limit - report.attempted
        take = size if room is None else (room if size is None else min(size, room))
        # claims go in id order: rows this call already handled (e.g. failed and due at
        # once) are behind ``last_id`` and wait for the retry rounds
        batch = _claim(store, [_due(_now()), OUTBOX.c.id > last_id, *scope], take, lease_seconds)
        if not batch:
            break
        last_id = max(m.outbox_id or 0 for m in batch)
        report.attempted += len(batch)
        retry_ids += _send_and_record(store, channel, batch, report, 1, max_attempts, backoff)
    return retry_ids


def _send_and_record(
    store: AppStore,
    channel: Channel[Any],
    batch: Sequence[Message],
    report: DeliveryReport,
    attempt: int,
    max_attempts: int,
    backoff: Backoff,
) -> list[int]:
    """Send one batch and write each result; the ids to try again in this call."""
    results = _send(channel, batch)
    now = _now()
    sent: list[int] = []
    failed: list[tuple[int, str, datetime | None]] = []
    again: list[int] = []
    for m, r in zip(batch, results, strict=True):
        oid = cast(int, m.outbox_id)
        if r.ok:
            sent.append(oid)
            continue
        error = r.error or _("unknown error")
        due = now + timedelta(seconds=_delay(backoff, attempt)) if r.retryable else None
        failed.append((oid, error, due))
        if r.retryable and attempt < max_attempts:
            again.append(oid)
        else:
            report.failed += 1
            report.errors.append((oid, m.customer_id, error))
    with store.engine.begin() as conn:
        _mark_sent(conn, sent, now)
        _mark_failed(conn, failed)
    report.sent += len(sent)
    return again


def retry_failed(
    store: AppStore,
    channel: Channel[Any],
    campaign_id: str | None = None,
    *,
    include_permanent: bool = False,
    message_channel: str | None = None,
    **deliver_options: Any,
) -> DeliveryReport:
    """Put failed messages back to pending — the retryable ones, and the permanent ones too
    with ``include_permanent`` (after fixing an address or a setting) — and :func:`deliver`
    again. Attempts keep counting; nothing already sent is sent again."""
    where = [OUTBOX.c.status == "failed", *_channel_scope(channel, campaign_id, message_channel)]
    if not include_permanent:
        where.append(OUTBOX.c.next_attempt_at.is_not(None))
    with store.engine.begin() as conn:
        conn.execute(update(OUTBOX).where(*where).values(status="pending", next_attempt_at=None))
    return deliver(
        store, channel, campaign_id=campaign_id, message_channel=message_channel, **deliver_options
    )


# -- reading --------------------------------------------------------------------------------


def outbox_status(store: AppStore, campaign_id: str | None = None) -> dict[str, dict[str, int]]:
    """Message counts: message channel -> {pending, sent, failed}."""
    q = (
        select(OUTBOX.c.channel, OUTBOX.c.status, func.count())
        .where(*_scope(campaign_id, None))
        .group_by(OUTBOX.c.channel, OUTBOX.c.status)
        .order_by(OUTBOX.c.channel)
    )
    out: dict[str, dict[str, int]] = {}
    with store.engine.connect() as conn:
        for ch, status, n in conn.execute(q):
            out.setdefault(ch, {"pending": 0, "sent": 0, "failed": 0})[status] = int(n)
    return out


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)  # SQLite keeps UTC without its zone
    return value


def failures(
    store: AppStore, campaign_id: str | None = None, limit: int | None = None
) -> list[Failure]:
    """The failed messages, oldest first, with their last error."""
    q = (
        select(OUTBOX)
        .where(OUTBOX.c.status == "failed", *_scope(campaign_id, None))
        .order_by(OUTBOX.c.id)
    )
    if limit is not None:
        q = q.limit(limit)
    with store.engine.connect() as conn:
        return [
            Failure(
                outbox_id=r.id,
                contact_id=r.contact_id,
                campaign_id=r.campaign_id,
                customer_id=r.customer_id,
                channel=r.channel,
                recipient=r.recipient,
                attempts=r.attempts,
                error=r.last_error,
                retryable=r.next_attempt_at is not None,
                next_attempt_at=_aware(r.next_attempt_at),
            )
            for r in conn.execute(q)
        ]
