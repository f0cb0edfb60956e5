"""What campaigns send and whom they must not reach: the outbox, do-not-contact entries and
campaign launches."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, Date, DateTime, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from kehu.store.models.base import Base, Timestamped

OUTBOX_STATUSES = ("pending", "sent", "failed")
LAUNCH_STATUSES = ("launched", "sent", "closed", "cancelled")


class OutboxMessage(Timestamped, Base):
    """One message to one customer on one channel. Written before any send is tried, so a
    crash or a refused send loses nothing: failed rows stay here with their error and are
    retried."""

    __tablename__ = "outbox"
    __table_args__ = (
        CheckConstraint(f"status IN {OUTBOX_STATUSES!r}", name="status"),
        Index("ix_outbox_status_channel", "status", "channel"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[str | None] = mapped_column(String(80), index=True)
    contact_id: Mapped[str | None] = mapped_column(String(120), unique=True)
    customer_id: Mapped[str | None] = mapped_column(String(80))
    channel: Mapped[str] = mapped_column(String(40))
    recipient: Mapped[str | None] = mapped_column(String(320))
    subject: Mapped[str | None] = mapped_column(String(500))
    body: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(10), default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class DoNotContact(Timestamped, Base):
    """An opt-out or a do-not-contact entry (免打扰): all channels when ``channel`` is empty."""

    __tablename__ = "do_not_contact"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(80), index=True)
    channel: Mapped[str | None] = mapped_column(String(40))
    reason: Mapped[str | None] = mapped_column(String(300))
    source: Mapped[str | None] = mapped_column(String(80))
    valid_from: Mapped[date] = mapped_column(Date)
    valid_to: Mapped[date | None] = mapped_column(Date)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class CampaignLaunch(Timestamped, Base):
    """A campaign's launch: which version of its spec, the seed of its holdout and the counts
    the contact policy and the randomisation produced."""

    __tablename__ = "campaign_launches"
    __table_args__ = (CheckConstraint(f"status IN {LAUNCH_STATUSES!r}", name="status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[str] = mapped_column(String(80), unique=True)
    definition_name: Mapped[str] = mapped_column(String(200))
    definition_version: Mapped[int] = mapped_column(default=1)
    launched_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    launched_by: Mapped[str] = mapped_column(String(120))
    seed: Mapped[int]
    eligible: Mapped[int] = mapped_column(default=0)
    suppressed: Mapped[int] = mapped_column(default=0)
    treatment: Mapped[int] = mapped_column(default=0)
    control: Mapped[int] = mapped_column(default=0)
    status: Mapped[str] = mapped_column(String(10), default="launched")
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSON)
