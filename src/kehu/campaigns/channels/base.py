"""The contract of a channel plugin: what it is given (:class:`Message`), what it answers
(:class:`SendResult`, one per message, in order) and how its settings are validated.

A channel only transports. Queueing, retries, backoff and bookkeeping live in
:mod:`kehu.campaigns.outbox`, so a plugin never has to think about losing a message: it says
for each message whether it went out and, when it did not, whether trying again may help.

>>> class Echo(Channel[NoSettings]):
...     '''Answers ok for every message with a recipient.'''
...     name = "echo"
...     config_model = NoSettings
...     def send(self, messages):
...         return [SendResult.success() if m.recipient
...                 else SendResult.failure("no recipient", retryable=False) for m in messages]
>>> for result in Echo().send([Message(channel="sms", recipient="138"), Message(channel="sms")]):
...     print(result)
SendResult(ok=True, error=None, retryable=False)
SendResult(ok=False, error='no recipient', retryable=False)
>>> try:
...     Echo({"colour": "red"})
... except ChannelConfigError as exc:
...     print(exc)
Channel 'echo': unknown setting 'colour'; the settings are: (none).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from kehu.errors import KehuError, KehuInputError
from kehu.i18n import _


class ChannelError(KehuError):
    """A channel could not be found, configured or used."""

    exit_code = 9


class ChannelConfigError(KehuInputError, ChannelError):
    """A channel's name or one of its settings is wrong; the message names the setting."""

    exit_code = 9


@dataclass(frozen=True, kw_only=True)
class Message:
    """One message to one customer, as the outbox holds it (``outbox_id`` is None before it
    is queued). ``payload`` carries the personalisation fields (``name``, ``offer``, …)."""

    outbox_id: int | None = None
    contact_id: str | None = None
    campaign_id: str | None = None
    customer_id: str | None = None
    channel: str
    recipient: str | None = None
    subject: str | None = None
    body: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)

    def fields(self) -> dict[str, Any]:
        """The fields a template may use: the payload plus the message's own identifiers.

        >>> Message(channel="sms", customer_id="C1", payload={"name": "王芳"}).fields()["name"]
        '王芳'
        """
        out: dict[str, Any] = {
            "contact_id": self.contact_id,
            "campaign_id": self.campaign_id,
            "customer_id": self.customer_id,
            "channel": self.channel,
            "recipient": self.recipient,
        }
        out.update(self.payload)
        return out


@dataclass(frozen=True)
class SendResult:
    """What happened to one message: sent (``ok``), or not, with the reason and whether a
    later attempt may succeed (a busy server) or not (an unknown mailbox)."""

    ok: bool
    error: str | None = None
    retryable: bool = False

    @classmethod
    def success(cls) -> SendResult:
        return cls(ok=True)

    @classmethod
    def failure(cls, error: str, *, retryable: bool) -> SendResult:
        return cls(ok=False, error=error, retryable=retryable)


class Settings(BaseModel):
    """Base of a channel's settings: unknown settings are refused, so a typo is caught."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NoSettings(Settings):
    """A channel without settings."""


ConfigT = TypeVar("ConfigT", bound=Settings)


class Channel(ABC, Generic[ConfigT]):
    """A way to reach customers. Subclasses set ``name``, ``config_model`` (a
    :class:`Settings` model; each field's description is its help text) and implement
    :meth:`send`. ``__init__`` only validates the settings; connections are opened by
    :meth:`send` and released by :meth:`close`.
    """

    #: the name it is registered under (entry point group ``kehu.channels``)
    name: ClassVar[str] = ""
    #: the settings model, validated in ``__init__``
    config_model: type[ConfigT]
    #: True when :meth:`send` does not transport anything and the outbox table itself is
    #: the hand-over to an external sender (the rows stay pending for it)
    external_delivery: ClassVar[bool] = False
    #: the outbox's message channels it can carry (``("email",)`` for e-mail); None: any.
    #: :func:`~kehu.campaigns.outbox.deliver` takes only those, so an e-mail channel never
    #: gets a phone number
    message_channels: ClassVar[tuple[str, ...] | None] = None

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        self.config: ConfigT = self.validate_config(config or {})

    @classmethod
    def validate_config(cls, config: Mapping[str, Any]) -> ConfigT:
        """The settings as ``config_model``; a :class:`ChannelConfigError` names each wrong
        setting, what it must be and what arrived."""
        if not isinstance(config, Mapping):
            raise ChannelConfigError(
                _(
                    "Channel '{channel}': the settings must be a table of "
                    "name = value, got {value}."
                ).format(channel=cls.name, value=type(config).__name__)
            )
        try:
            return cls.config_model.model_validate(dict(config))
        except ValidationError as exc:
            raise ChannelConfigError(settings_problems(cls.name, cls.config_model, exc)) from exc

    @property
    def batch_size(self) -> int | None:
        """How many messages :meth:`send` takes at once (None: all of them in one call)."""
        value = getattr(self.config, "batch_size", 100)
        return value if value is None else int(value)

    @abstractmethod
    def send(self, messages: Sequence[Message]) -> list[SendResult]:
        """Send ``messages``; one :class:`SendResult` per message, in the same order. A
        transport failure is reported in the results, not raised."""

    def close(self) -> None:
        """Release connections or files (optional)."""

    def __enter__(self) -> Channel[ConfigT]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


def settings_problems(channel: str, model: type[BaseModel], exc: ValidationError) -> str:
    """One sentence per wrong setting, naming it (used by :meth:`Channel.validate_config`)."""
    known = ", ".join(model.model_fields) or _("(none)")
    parts = []
    for err in exc.errors():
        setting = ".".join(str(x) for x in err["loc"]) or "?"
        if err["type"] == "extra_forbidden":
            parts.append(
                _(
                    "Channel '{channel}': unknown setting '{setting}'; the settings are: {known}."
                ).format(channel=channel, setting=setting, known=known)
            )
        elif err["type"] == "missing":
            parts.append(
                _("Channel '{channel}': the setting '{setting}' is required.").format(
                    channel=channel, setting=setting
                )
            )
        else:
            parts.append(
                _(
                    "Channel '{channel}': the setting '{setting}' is wrong: {problem} "
                    "(got {value!r})."
                ).format(
                    channel=channel, setting=setting, problem=err["msg"], value=err.get("input")
                )
            )
    return " ".join(parts)
