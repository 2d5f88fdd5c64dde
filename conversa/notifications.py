"""The notification-system integration: ``sms`` and ``whatsapp`` as notification channels.

Conversa delivers; the application decides what to send and to whom. A *notifiable* (a
user, an account...) says where each channel reaches it through
``route_notification_for(channel)``; a :class:`NotificationChannel` sends notification data
to it; the :class:`ChannelManager` holds the channels by name (the service registers
``sms`` and ``whatsapp`` when it is built, as ``service.channels``); and the
:class:`NotificationDispatcher` sends one notification on several channels.

This module does no IO of its own: a :class:`MessageChannel` sends through the service.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from conversa.app.results import SendResult
from conversa.domain.channel import Channel
from conversa.domain.errors import InvalidRequest

__all__ = [
    "ChannelManager",
    "DispatchError",
    "MessageChannel",
    "MessageSender",
    "NoRoute",
    "Notifiable",
    "NotificationChannel",
    "NotificationDispatcher",
    "UnknownNotificationChannel",
]

#: The keys a message channel's notification data may hold: the content (exactly one of
#: ``body`` or ``template``) and the send options.
CONTENT_KEYS = ("body", "template")
OPTION_KEYS = ("idempotency_key", "from", "meta")
DATA_KEYS = frozenset(CONTENT_KEYS + OPTION_KEYS)


@runtime_checkable
class Notifiable(Protocol):
    """Anything that can receive notifications: it names its address on each channel."""

    def route_notification_for(self, channel: str) -> str | None:
        """The address (for ``sms`` and ``whatsapp``, a phone number) on ``channel``, or
        ``None`` when the notifiable cannot be reached there."""
        ...


class MessageSender(Protocol):
    """What a :class:`MessageChannel` sends through: :meth:`ConversaService.send`."""

    def send(
        self,
        channel: str,
        to: str,
        payload: Mapping[str, Any],
        opts: Mapping[str, Any] | None = None,
    ) -> SendResult: ...


class NoRoute(InvalidRequest):
    """The notifiable has no address on the channel; nothing was sent."""

    code = "no_route"

    def __init__(self, channel: str) -> None:
        super().__init__(
            "to",
            f"the notifiable has no route for the {channel} channel: "
            f"route_notification_for({channel!r}) returned nothing",
        )
        self.channel = channel


class UnknownNotificationChannel(LookupError):
    """No channel of that name is registered."""

    def __init__(self, name: str, registered: Sequence[str]) -> None:
        self.name = name
        self.registered = list(registered)
        known = ", ".join(self.registered) if self.registered else "none"
        self.message = f"no notification channel named {name!r}; registered: {known}"
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


class DispatchError(Exception):
    """Some channels of a dispatch failed; the others were still tried.

    ``results`` holds the channels that sent, ``errors`` the exception of each channel
    that did not, both keyed by channel name.
    """

    def __init__(self, results: dict[str, SendResult], errors: dict[str, Exception]) -> None:
        self.results = results
        self.errors = errors
        failed = "; ".join(
            f"{name}: {type(error).__name__}: {error}" for name, error in errors.items()
        )
        sent = ", ".join(results) if results else "none"
        super().__init__(
            f"{len(errors)} of {len(errors) + len(results)} notification channels failed "
            f"({failed}); sent on: {sent}"
        )


class NotificationChannel(ABC):
    """One way of delivering notifications, known by its name."""

    @abstractmethod
    def get_channel_name(self) -> str:
        """The name the channel is registered and dispatched under."""

    @abstractmethod
    def send(self, notifiable: Notifiable, data: Mapping[str, Any]) -> SendResult:
        """Deliver ``data`` to ``notifiable`` on this channel."""


class MessageChannel(NotificationChannel):
    """The ``sms`` or ``whatsapp`` channel, sending through the Conversa service.

    ``data`` holds exactly one of ``body`` or ``template`` and, optionally, the send
    options ``idempotency_key``, ``from`` and ``meta``; any other key is refused. The
    recipient is ``notifiable.route_notification_for(channel)``.
    """

    def __init__(self, service: MessageSender, channel: str) -> None:
        choices = [c.value for c in Channel]
        if channel not in choices:
            raise ValueError(f"a message channel is one of {', '.join(choices)}, not {channel!r}")
        self._service = service
        self._channel = channel

    def get_channel_name(self) -> str:
        return self._channel

    def send(self, notifiable: Notifiable, data: Mapping[str, Any]) -> SendResult:
        """Send ``data`` to the notifiable's number on this channel and return the outcome.

        Raises :class:`InvalidRequest` for an unknown key in ``data`` (or whatever the
        service refuses), and :class:`NoRoute` when the notifiable has no number on this
        channel; in both cases nothing is sent or stored.
        """
        if not isinstance(data, Mapping):
            raise TypeError("notification data must be a mapping")
        unknown = sorted(str(key) for key in data if key not in DATA_KEYS)
        if unknown:
            raise InvalidRequest(
                unknown[0],
                f"unknown key {unknown[0]} in notification data; "
                f"known: {', '.join(sorted(DATA_KEYS))}",
            )
        if not isinstance(notifiable, Notifiable):
            raise TypeError(
                f"{type(notifiable).__name__} is not notifiable: "
                "it has no route_notification_for(channel)"
            )
        to = notifiable.route_notification_for(self._channel)
        if to is None or (isinstance(to, str) and not to.strip()):
            raise NoRoute(self._channel)
        payload = {key: data[key] for key in CONTENT_KEYS if key in data}
        opts = {key: data[key] for key in OPTION_KEYS if key in data}
        return self._service.send(self._channel, to, payload, opts)

    def __repr__(self) -> str:
        return f"MessageChannel({self._channel!r})"


class ChannelManager:
    """The registered notification channels, by name."""

    def __init__(self) -> None:
        self._channels: dict[str, NotificationChannel] = {}

    def register_channel(self, channel: NotificationChannel) -> None:
        """Register ``channel`` under its name, replacing a channel of the same name."""
        if not isinstance(channel, NotificationChannel):
            raise TypeError(f"{type(channel).__name__} is not a NotificationChannel")
        name = channel.get_channel_name()
        if not isinstance(name, str) or not name:
            raise ValueError("a notification channel's name must be a non-empty string")
        self._channels[name] = channel

    def get_channel(self, name: str) -> NotificationChannel:
        try:
            return self._channels[name]
        except KeyError:
            raise UnknownNotificationChannel(name, self.channel_names()) from None

    def channel_names(self) -> list[str]:
        """The registered names, in the order they were first registered."""
        return list(self._channels)


class NotificationDispatcher:
    """Sends one notification on several channels of a :class:`ChannelManager`."""

    def __init__(self, manager: ChannelManager) -> None:
        self.manager = manager

    def send(
        self, notifiable: Notifiable, data: Mapping[str, Any], channels: Sequence[str]
    ) -> dict[str, SendResult]:
        """Send ``data`` to ``notifiable`` on each of ``channels``, in order.

        Every channel name is looked up before anything is sent, so an unknown name
        raises :class:`UnknownNotificationChannel` and sends nothing. A channel that
        raises does not stop the others: once all were tried, :class:`DispatchError`
        carries the results of those that sent and the errors of those that did not.
        A send the provider refused is not an exception: its ``SendResult`` is not ``ok``.
        """
        if isinstance(channels, str):
            raise TypeError("channels must be a sequence of channel names, not one string")
        names = list(channels)
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"channels named more than once: {', '.join(duplicates)}")
        resolved = [(name, self.manager.get_channel(name)) for name in names]
        results: dict[str, SendResult] = {}
        errors: dict[str, Exception] = {}
        for name, channel in resolved:
            try:
                results[name] = channel.send(notifiable, data)
            except Exception as error:
                errors[name] = error
        if errors:
            raise DispatchError(results, errors)
        return results
