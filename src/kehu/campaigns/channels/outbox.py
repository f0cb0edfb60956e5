"""The default channel: the outbox table itself is the integration point.

Messages stay ``pending`` in the app store's ``outbox`` table and an external system (the
company's SMS platform, a marketing-automation tool, a nightly job) delivers them. It reads
and acknowledges them with three functions of :mod:`kehu.campaigns.outbox`::

    from kehu.campaigns.outbox import claim_pending, mark_failed, mark_sent

    batch = claim_pending(store, limit=500, message_channel="sms")  # leased for 5 minutes
    for m in batch:
        try:
            gateway.send(m.recipient, m.body)
        except GatewayBusy as exc:
            mark_failed(store, [m.outbox_id], str(exc), retryable=True)
        else:
            mark_sent(store, [m.outbox_id])

A claimed message not acknowledged before its lease ends is handed out again, so a sender
that crashes loses nothing. (The same can be done in SQL: rows with ``status = 'pending'``.)

>>> ch = OutboxChannel()
>>> ch.external_delivery, ch.send([Message(channel="sms", recipient="13800000000")])
(True, [SendResult(ok=True, error=None, retryable=False)])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from kehu.campaigns.channels.base import Channel, Message, NoSettings, SendResult


class OutboxChannel(Channel[NoSettings]):
    """Leave messages in the outbox table for an external sender (the default)."""

    name: ClassVar[str] = "outbox"
    config_model = NoSettings
    external_delivery: ClassVar[bool] = True

    @property
    def batch_size(self) -> int | None:
        return None

    def send(self, messages: Sequence[Message]) -> list[SendResult]:
        """Hand the messages over: nothing is transported, every message is ok."""
        return [SendResult.success() for _ in messages]
