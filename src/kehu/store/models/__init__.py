"""App store models, one module per concern."""

from __future__ import annotations

from kehu.store.models.audit import AuditEntry
from kehu.store.models.base import Base
from kehu.store.models.campaign_drafts import CampaignDraft
from kehu.store.models.crm import Assignment, LoggedInteraction, Note, Task
from kehu.store.models.definitions import Definition
from kehu.store.models.identity import IdentityJournalEntry, IdentityPair, IdentityRun
from kehu.store.models.outreach import CampaignLaunch, DoNotContact, OutboxMessage
from kehu.store.models.people import ApiToken, LoginAttempt, User

__all__ = ["ApiToken", "Assignment", "AuditEntry", "Base", "CampaignDraft", "CampaignLaunch",
           "Definition", "DoNotContact", "IdentityJournalEntry", "IdentityPair", "IdentityRun",
           "LoggedInteraction", "LoginAttempt", "Note",
           "OutboxMessage", "Task", "User"]
