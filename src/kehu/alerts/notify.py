"""E-mail notification of new tasks through the SMTP channel adapter (``[channels.smtp]``).

>>> from kehu.alerts.notify import email_notifier
>>> email_notifier({}) is None          # no SMTP settings: in-app notification only
True
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from kehu.campaigns.channels import Message, get_channel
from kehu.campaigns.channels.base import ChannelError

Notify = Callable[[str, str, str], None]


def email_notifier(channels: Mapping[str, Mapping[str, Any]]) -> Notify | None:
    """A ``notify(recipient, subject, body)`` that sends one e-mail through the SMTP adapter,
    raising :class:`ChannelError` when the server refuses it (the alert run then reports it
    and tries again next run); ``None`` when ``[channels.smtp]`` is not configured."""
    cfg = channels.get("smtp")
    if not cfg:
        return None
    channel = get_channel("smtp", dict(cfg))

    def notify(recipient: str, subject: str, body: str) -> None:
        res = channel.send([Message(channel="email", recipient=recipient, subject=subject,
                                    body=body, payload={})])[0]
        if not res.ok:
            raise ChannelError(res.error or "send failed")

    return notify
