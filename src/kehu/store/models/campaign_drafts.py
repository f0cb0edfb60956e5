"""Campaigns before launch: drafts, their approval and who moved them along."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, DateTime, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from kehu.store.models.base import Base, Timestamped

#: draft → submitted (awaiting approval) → approved → launched; submitted → rejected → draft
DRAFT_STATUSES = ("draft", "submitted", "approved", "rejected", "launched")


class CampaignDraft(Timestamped, Base):
    """A campaign spec being prepared: saved by an analyst, approved (or rejected with a
    reason) by a manager, launched once approved. ``plan`` keeps the counts of the last
    policy check (audience, suppressed, groups) for the campaign list."""

    __tablename__ = "campaign_drafts"
    __table_args__ = (CheckConstraint(f"status IN {DRAFT_STATUSES!r}", name="status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[str] = mapped_column(String(80), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(12), default="draft")
    version: Mapped[int] = mapped_column(default=1)
    plan: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_by: Mapped[str] = mapped_column(String(120))
    created_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"))
    updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    submitted_by: Mapped[str | None] = mapped_column(String(120))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    decided_by: Mapped[str | None] = mapped_column(String(120))
    decided_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"))
    decision_reason: Mapped[str | None] = mapped_column(Text)
    launched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    launched_by: Mapped[str | None] = mapped_column(String(120))
