"""Identity resolution in the app store: its runs, the review queue with the decisions
people took (merge / keep apart), and the journal of every change of keys (reversible)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from kehu.store.models.base import Base

PAIR_STATUSES = ("pending", "merge", "keep_apart")
PAIR_ORIGINS = ("model", "manual", "undo")
JOURNAL_ACTIONS = ("merge", "split", "undo")
JOURNAL_KINDS = ("auto", "manual")


class IdentityRun(Base):
    """One identity-resolution run: what it read, what it changed, the model it used."""

    __tablename__ = "identity_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True),
                                                 server_default=func.now())
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(String(120))
    engine: Mapped[str] = mapped_column(String(20))
    records: Mapped[int] = mapped_column(Integer, default=0)
    customers: Mapped[int] = mapped_column(Integer, default=0)
    new_keys: Mapped[int] = mapped_column(Integer, default=0)
    merges: Mapped[int] = mapped_column(Integer, default=0)
    splits: Mapped[int] = mapped_column(Integer, default=0)
    review_pairs: Mapped[int] = mapped_column(Integer, default=0)
    conflicts: Mapped[int] = mapped_column(Integer, default=0)
    key_high_water: Mapped[int] = mapped_column(Integer, default=0)
    trained: Mapped[bool] = mapped_column(default=False)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    model: Mapped[dict[str, Any]] = mapped_column(JSON)


class IdentityPair(Base):
    """A pair of source records for review, and the decision on it. ``merge`` pairs are kept
    together and ``keep_apart`` pairs apart by every later run."""

    __tablename__ = "identity_pairs"
    __table_args__ = (
        CheckConstraint(f"status IN {PAIR_STATUSES!r}", name="status"),
        CheckConstraint(f"origin IN {PAIR_ORIGINS!r}", name="origin"),
        UniqueConstraint("record_id_l", "record_id_r", name="uq_identity_pairs_records"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    record_id_l: Mapped[str] = mapped_column(String(120), index=True)
    record_id_r: Mapped[str] = mapped_column(String(120), index=True)
    match_probability: Mapped[float | None] = mapped_column(Float)
    match_weight: Mapped[float | None] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(12), default="pending", index=True)
    origin: Mapped[str] = mapped_column(String(8), default="model")
    run_id: Mapped[int | None] = mapped_column(
        ForeignKey("identity_runs.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True),
                                                 server_default=func.now())
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    decided_by: Mapped[str | None] = mapped_column(String(120))
    note: Mapped[str | None] = mapped_column(Text)


class IdentityJournalEntry(Base):
    """A change of kehu keys: ``merge`` (``retired`` keys joined ``kehu_key``), ``split``
    (records left ``kehu_key``) or ``undo`` of an earlier entry. ``before`` / ``after`` map
    each record concerned to its key, so an entry can be reverted."""

    __tablename__ = "identity_journal"
    __table_args__ = (
        CheckConstraint(f"action IN {JOURNAL_ACTIONS!r}", name="action"),
        CheckConstraint(f"kind IN {JOURNAL_KINDS!r}", name="kind"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(),
                                         index=True)
    actor: Mapped[str] = mapped_column(String(120))
    action: Mapped[str] = mapped_column(String(8))
    kind: Mapped[str] = mapped_column(String(8))
    kehu_key: Mapped[str] = mapped_column(String(40), index=True)
    retired: Mapped[list[str]] = mapped_column(JSON, default=list)
    before: Mapped[dict[str, Any]] = mapped_column(JSON)
    after: Mapped[dict[str, Any]] = mapped_column(JSON)
    run_id: Mapped[int | None] = mapped_column(
        ForeignKey("identity_runs.id", ondelete="SET NULL"))
    pair_id: Mapped[int | None] = mapped_column(
        ForeignKey("identity_pairs.id", ondelete="SET NULL"))
    undo_of: Mapped[int | None] = mapped_column(
        ForeignKey("identity_journal.id", ondelete="SET NULL"))
    undone_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    undone_by: Mapped[str | None] = mapped_column(String(120))
    high_water: Mapped[int | None] = mapped_column(Integer)
