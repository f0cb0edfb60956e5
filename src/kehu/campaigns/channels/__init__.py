"""Channels are plugins: the ways a campaign reaches customers.

kehu's own channels (``outbox``, ``file``, ``smtp``, ``webhook``) are registered exactly as a
third party registers one, in the entry-point group ``kehu.channels`` of its package::

    # pyproject.toml of the package "kehu-wecom"
    [project.entry-points."kehu.channels"]
    wecom = "kehu_wecom:WeComChannel"

The object named is a :class:`Channel` subclass (or any callable taking the settings dict and
returning a channel). For a test or a notebook, :func:`register_channel` registers one in the
running process only.

>>> {"file", "outbox", "smtp", "webhook"} <= set(available_channels())
True
>>> get_channel("outbox")
OutboxChannel('outbox')
>>> try:
...     get_channel("fax")
... except ChannelConfigError as exc:
...     print(exc)
No channel named 'fax'. Available channels: file, outbox, smtp, webhook.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from kehu.campaigns.channels.base import (
    Channel,
    ChannelConfigError,
    ChannelError,
    Message,
    NoSettings,
    SendResult,
    Settings,
)
from kehu.i18n import _

__all__ = [
    "GROUP",
    "Channel",
    "ChannelConfigError",
    "ChannelError",
    "ChannelFactory",
    "Message",
    "NoSettings",
    "SendResult",
    "Settings",
    "available_channels",
    "get_channel",
    "register_channel",
    "unregister_channel",
]

#: the entry-point group channels are registered in
GROUP = "kehu.channels"

ChannelFactory = Callable[[Mapping[str, Any]], Channel[Any]]

_registered: dict[str, ChannelFactory] = {}


def register_channel(name: str, factory: ChannelFactory) -> None:
    """Register a channel in this process only (a test, a notebook); it takes precedence
    over an installed channel of the same name."""
    if not name or not name.replace("_", "").replace("-", "").isalnum():
        raise ChannelConfigError(
            _("A channel name must be letters, digits, '_' or '-', got {name!r}.").format(name=name)
        )
    _registered[name] = factory


def unregister_channel(name: str) -> None:
    """Forget a channel registered with :func:`register_channel` (no error if absent)."""
    _registered.pop(name, None)


def _entry_points() -> dict[str, EntryPoint]:
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=GROUP):
        found.setdefault(ep.name, ep)  # the first distribution on sys.path wins
    return found


def _describe(factory: object) -> str:
    doc = getattr(factory, "__doc__", None) or ""
    return doc.strip().split("\n\n")[0].replace("\n", " ").strip()


def available_channels() -> dict[str, str]:
    """Name -> one-line description of every channel: installed ones (entry points) and
    those registered in this process. A plugin that cannot be imported is listed with the
    reason instead of breaking the list."""
    out: dict[str, str] = {}
    for name, ep in _entry_points().items():
        try:
            out[name] = _describe(ep.load())
        except Exception as exc:
            out[name] = _("(cannot be loaded from {target}: {err})").format(
                target=ep.value, err=f"{exc.__class__.__name__}: {exc}"
            )
    for name, factory in _registered.items():
        out[name] = _describe(factory)
    return dict(sorted(out.items()))


def get_channel(name: str, config: Mapping[str, Any] | None = None) -> Channel[Any]:
    """The channel ``name`` configured with ``config`` (its settings, validated by the
    channel; a wrong setting raises :class:`ChannelConfigError` naming it)."""
    factory: Any = _registered.get(name)
    if factory is None:
        ep = _entry_points().get(name)
        if ep is None:
            names = sorted(set(_entry_points()) | set(_registered))
            raise ChannelConfigError(
                _("No channel named '{name}'. Available channels: {names}.").format(
                    name=name, names=", ".join(names) or "-"
                )
            )
        try:
            factory = ep.load()
        except Exception as exc:
            raise ChannelError(
                _(
                    "The channel '{name}' is installed ({target}) but cannot be "
                    "loaded: {err}. Reinstall the package that provides it."
                ).format(name=name, target=ep.value, err=f"{exc.__class__.__name__}: {exc}")
            ) from exc
    channel = factory(dict(config or {}))
    if not isinstance(channel, Channel):
        raise ChannelError(
            _("The channel '{name}' did not produce a Channel (got {type}).").format(
                name=name, type=type(channel).__name__
            )
        )
    return channel
