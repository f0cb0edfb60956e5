"""Validated specs people author: segments, alert rules, campaigns, contact policies."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, DateTime, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from kehu.store.models.base import Base, Timestamped

KINDS = ("segment", "alert_rule", "campaign", "contact_policy", "programme", "service_levels",
         "tier_scheme", "lifecycle_rules")


class Definition(Timestamped, Base):
    __tablename__ = "definitions"
    __table_args__ = (CheckConstraint(f"kind IN {KINDS!r}", name="kind"),
                      UniqueConstraint("kind", "name", name="uq_definitions_kind_name"))

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    version: Mapped[int] = mapped_column(default=1)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
