"""The notification channels, manager and dispatcher, over a fake service that records sends."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest

from conversa.app.results import MessageState, SendResult
from conversa.domain.errors import InvalidRequest
from conversa.notifications import (
    ChannelManager,
    DispatchError,
    MessageChannel,
    NoRoute,
    Notifiable,
    NotificationChannel,
    NotificationDispatcher,
    UnknownNotificationChannel,
)

PHONE = "+15551234567"
MOMENT = datetime(2026, 1, 1, tzinfo=UTC)


def send_result(channel: str, to: str) -> SendResult:
    message_id = uuid4()
    state = MessageState(
        id=message_id,
        channel=channel,
        to=to,
        sender=None,
        driver="fake",
        status="sent",
        body=None,
        template=None,
        provider_message_id=f"fake-{message_id}",
        attempts=1,
        error=None,
        idempotency_key=None,
        meta={},
        created_at=MOMENT,
        updated_at=MOMENT,
    )
    return SendResult(
        ok=True,
        message_id=message_id,
        status="sent",
        provider_message_id=state.provider_message_id,
        error=None,
        replayed=False,
        message=state,
    )


@dataclass(frozen=True)
class Call:
    channel: str
    to: str
    payload: dict[str, Any]
    opts: dict[str, Any] | None


@dataclass
class FakeService:
    """ConversaService.send's signature; records each call and can fail one channel."""

    calls: list[Call] = field(default_factory=list)
    fail_on: str | None = None

    def send(
        self,
        channel: str,
        to: str,
        payload: Mapping[str, Any],
        opts: Mapping[str, Any] | None = None,
    ) -> SendResult:
        self.calls.append(Call(channel, to, dict(payload), None if opts is None else dict(opts)))
        if channel == self.fail_on:
            raise RuntimeError(f"{channel} provider exploded")
        return send_result(channel, to)


@dataclass
class User:
    phone: str | None
    asked: list[str] = field(default_factory=list)

    def route_notification_for(self, channel: str) -> str | None:
        self.asked.append(channel)
        return self.phone if channel in ("sms", "whatsapp") else None


class Collecting(NotificationChannel):
    """A non-message channel (say, email) that records what it was given."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.sent: list[tuple[Notifiable, Mapping[str, Any]]] = []

    def get_channel_name(self) -> str:
        return self.name

    def send(self, notifiable: Notifiable, data: Mapping[str, Any]) -> SendResult:
        self.sent.append((notifiable, data))
        return send_result(self.name, "someone@example.com")


@pytest.fixture
def service() -> FakeService:
    return FakeService()


def manager_over(service: FakeService) -> ChannelManager:
    manager = ChannelManager()
    manager.register_channel(MessageChannel(service, "sms"))
    manager.register_channel(MessageChannel(service, "whatsapp"))
    return manager


# Notifiable


def test_a_class_with_route_notification_for_is_notifiable() -> None:
    assert isinstance(User(PHONE), Notifiable)
    assert not isinstance(object(), Notifiable)


# MessageChannel


@pytest.mark.parametrize("channel", ["sms", "whatsapp"])
def test_a_message_channel_sends_the_body_to_the_route_of_its_channel(
    service: FakeService, channel: str
) -> None:
    user = User(PHONE)
    sms = MessageChannel(service, channel)

    result = sms.send(user, {"body": "Your appointment is tomorrow at 9am"})

    assert sms.get_channel_name() == channel
    assert user.asked == [channel]
    assert service.calls == [
        Call(channel, PHONE, {"body": "Your appointment is tomorrow at 9am"}, {})
    ]
    assert result.ok and result.message.channel == channel and result.message.to == PHONE


def test_a_template_is_sent_as_the_template_payload(service: FakeService) -> None:
    template = {"name": "order_shipped", "variables": ["1Z999"]}

    MessageChannel(service, "whatsapp").send(User(PHONE), {"template": template})

    assert service.calls == [Call("whatsapp", PHONE, {"template": template}, {})]


def test_body_and_template_together_are_left_for_the_service_to_refuse(
    service: FakeService,
) -> None:
    # The channel does not second-guess the service's "exactly one" rule: it passes both.
    data = {"body": "x", "template": {"name": "t"}}
    MessageChannel(service, "sms").send(User(PHONE), data)
    assert service.calls[0].payload == data


def test_the_send_options_are_passed_through_as_opts(service: FakeService) -> None:
    data = {
        "body": "Your order has shipped",
        "idempotency_key": "order-4711-shipped",
        "from": "Acme",
        "meta": {"order": 4711},
    }

    MessageChannel(service, "sms").send(User(PHONE), data)

    assert service.calls == [
        Call(
            "sms",
            PHONE,
            {"body": "Your order has shipped"},
            {"idempotency_key": "order-4711-shipped", "from": "Acme", "meta": {"order": 4711}},
        )
    ]


@pytest.mark.parametrize("phone", [None, "", "   "])
def test_no_route_raises_no_route_and_sends_nothing(
    service: FakeService, phone: str | None
) -> None:
    user = User(phone)

    with pytest.raises(NoRoute) as refused:
        MessageChannel(service, "whatsapp").send(user, {"body": "Hello"})

    assert isinstance(refused.value, InvalidRequest)
    assert refused.value.field == "to"
    assert refused.value.code == "no_route"
    assert refused.value.channel == "whatsapp"
    assert "whatsapp" in refused.value.message
    assert user.asked == ["whatsapp"]
    assert service.calls == []


def test_an_unknown_data_key_is_refused_naming_the_key(service: FakeService) -> None:
    with pytest.raises(InvalidRequest) as refused:
        MessageChannel(service, "sms").send(User(PHONE), {"body": "Hello", "subject": "Hi"})

    assert refused.value.field == "subject"
    assert "subject" in refused.value.message
    assert service.calls == []


def test_something_that_is_not_notifiable_is_refused(service: FakeService) -> None:
    with pytest.raises(TypeError, match="not notifiable"):
        MessageChannel(service, "sms").send(object(), {"body": "Hello"})  # type: ignore[arg-type]
    assert service.calls == []


def test_a_message_channel_is_only_sms_or_whatsapp(service: FakeService) -> None:
    with pytest.raises(ValueError, match="sms, whatsapp"):
        MessageChannel(service, "fax")


# ChannelManager


def test_the_manager_registers_finds_and_replaces_channels(service: FakeService) -> None:
    manager = manager_over(service)
    sms = manager.get_channel("sms")
    assert sms.get_channel_name() == "sms"
    assert manager.get_channel("whatsapp").get_channel_name() == "whatsapp"
    assert manager.channel_names() == ["sms", "whatsapp"]

    replacement = Collecting("sms")
    manager.register_channel(replacement)

    assert manager.get_channel("sms") is replacement
    assert manager.channel_names() == ["sms", "whatsapp"]

    manager.register_channel(Collecting("email"))
    assert manager.channel_names() == ["sms", "whatsapp", "email"]


def test_an_unknown_channel_name_lists_the_registered_ones(service: FakeService) -> None:
    manager = manager_over(service)

    with pytest.raises(UnknownNotificationChannel) as missing:
        manager.get_channel("email")

    assert isinstance(missing.value, LookupError)
    assert missing.value.name == "email"
    assert missing.value.registered == ["sms", "whatsapp"]
    assert str(missing.value) == "no notification channel named 'email'; registered: sms, whatsapp"

    with pytest.raises(UnknownNotificationChannel, match="registered: none"):
        ChannelManager().get_channel("sms")


# NotificationDispatcher


def test_the_dispatcher_sends_on_each_channel_in_order(service: FakeService) -> None:
    manager = manager_over(service)
    email = Collecting("email")
    manager.register_channel(email)
    user = User(PHONE)

    results = NotificationDispatcher(manager).send(
        user, {"body": "Hello"}, ["whatsapp", "email", "sms"]
    )

    assert list(results) == ["whatsapp", "email", "sms"]
    assert [call.channel for call in service.calls] == ["whatsapp", "sms"]
    assert email.sent == [(user, {"body": "Hello"})]
    assert results["whatsapp"].message.channel == "whatsapp"
    assert results["sms"].message.channel == "sms"
    assert results["email"].message.channel == "email"


def test_one_failing_channel_does_not_stop_the_others(service: FakeService) -> None:
    service.fail_on = "sms"
    dispatcher = NotificationDispatcher(manager_over(service))

    with pytest.raises(DispatchError) as failed:
        dispatcher.send(User(PHONE), {"body": "Hello"}, ["sms", "whatsapp"])

    # sms was tried first and failed; whatsapp was still sent.
    assert [call.channel for call in service.calls] == ["sms", "whatsapp"]
    assert list(failed.value.results) == ["whatsapp"]
    assert failed.value.results["whatsapp"].ok
    assert list(failed.value.errors) == ["sms"]
    assert isinstance(failed.value.errors["sms"], RuntimeError)
    assert "sms: RuntimeError: sms provider exploded" in str(failed.value)


def test_a_channel_without_a_route_is_reported_and_the_other_still_sends(
    service: FakeService,
) -> None:
    manager = manager_over(service)
    email = Collecting("email")
    manager.register_channel(email)

    with pytest.raises(DispatchError) as failed:
        NotificationDispatcher(manager).send(User(None), {"body": "Hello"}, ["sms", "email"])

    assert isinstance(failed.value.errors["sms"], NoRoute)
    assert list(failed.value.results) == ["email"]
    assert service.calls == []
    assert len(email.sent) == 1


def test_an_unknown_channel_name_sends_nothing(service: FakeService) -> None:
    dispatcher = NotificationDispatcher(manager_over(service))

    with pytest.raises(UnknownNotificationChannel, match="'push'"):
        dispatcher.send(User(PHONE), {"body": "Hello"}, ["sms", "push"])

    assert service.calls == []


def test_channels_must_be_a_list_of_distinct_names(service: FakeService) -> None:
    dispatcher = NotificationDispatcher(manager_over(service))

    with pytest.raises(TypeError, match="not one string"):
        dispatcher.send(User(PHONE), {"body": "Hello"}, "sms")
    with pytest.raises(ValueError, match="more than once: sms"):
        dispatcher.send(User(PHONE), {"body": "Hello"}, ["sms", "whatsapp", "sms"])

    assert service.calls == []
    assert NotificationDispatcher(manager_over(service)).send(User(PHONE), {}, []) == {}


def test_when_every_channel_fails_the_error_holds_no_results(service: FakeService) -> None:
    with pytest.raises(DispatchError) as failed:
        NotificationDispatcher(manager_over(service)).send(
            User(PHONE), {"body": "Hello", "subject": "Hi"}, ["sms", "whatsapp"]
        )

    assert failed.value.results == {}
    assert sorted(failed.value.errors) == ["sms", "whatsapp"]
    assert all(
        isinstance(e, InvalidRequest) and e.field == "subject" for e in failed.value.errors.values()
    )
    assert str(failed.value).startswith("2 of 2 notification channels failed")
    assert str(failed.value).endswith("sent on: none")
    assert service.calls == []
