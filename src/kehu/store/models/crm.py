"""What staff create about customers: notes, logged interactions, tasks, assignments."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import CheckConstraint, Date, DateTime, ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from kehu.store.models.base import Base, Timestamped

TASK_STATUSES = ("open", "done", "snoozed", "dismissed", "cancelled")
#: statuses in which a task's condition counts as still being handled (no second firing)
OPEN_STATUSES = ("open", "snoozed")
PRIORITIES = ("low", "normal", "high")


class Note(Timestamped, Base):
    __tablename__ = "notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(80), index=True)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    text: Mapped[str] = mapped_column(Text)


class LoggedInteraction(Timestamped, Base):
    """An interaction staff record in kehu (a call, a visit) — copied to the warehouse's
    interactions by the analysis run."""

    __tablename__ = "logged_interactions"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(80), index=True)
    time: Mapped[datetime] = mapped_column(DateTime(timezone=False))
    channel: Mapped[str] = mapped_column(String(20))
    type: Mapped[str | None] = mapped_column(String(80))
    direction: Mapped[str | None] = mapped_column(String(10))
    outcome: Mapped[str | None] = mapped_column(String(200))
    text: Mapped[str | None] = mapped_column(Text)
    employee_id: Mapped[str | None] = mapped_column(String(80))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class Task(Timestamped, Base):
    __tablename__ = "tasks"
    __table_args__ = (
        CheckConstraint(f"status IN {TASK_STATUSES!r}", name="status"),
        CheckConstraint(f"priority IN {PRIORITIES!r}", name="priority"),
        Index("ix_tasks_assignee_status", "assignee_id", "status"),
        # the same alert condition cannot have two open tasks, even under concurrent runs
        Index("uq_tasks_open_dedup_key", "dedup_key", unique=True,
              sqlite_where=text("status IN ('open', 'snoozed')"),
              postgresql_where=text("status IN ('open', 'snoozed')")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[str | None] = mapped_column(String(80), index=True)
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    title: Mapped[str] = mapped_column(String(300))
    description: Mapped[str | None] = mapped_column(Text)
    due_date: Mapped[date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(12), default="open")
    priority: Mapped[str] = mapped_column(String(8), default="normal")
    origin: Mapped[str | None] = mapped_column(String(200))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: identity of the condition that created it (rule, customer, object), for deduplication
    dedup_key: Mapped[str | None] = mapped_column(String(400))
    #: team queue when no account manager is known
    team: Mapped[str | None] = mapped_column(String(80))
    snoozed_until: Mapped[date | None] = mapped_column(Date)
    notified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Assignment(Timestamped, Base):
    """A customer's account manager (客户经理) over a period."""

    __tablename__ = "assignments"
    __table_args__ = (Index("ix_assignments_employee_valid_to", "employee_id", "valid_to"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(80), index=True)
    employee_id: Mapped[str] = mapped_column(String(80))
    valid_from: Mapped[date] = mapped_column(Date)
    valid_to: Mapped[date | None] = mapped_column(Date)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
