"""The sms and whatsapp notification channels of a real service, on SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

import pytest

from conversa.app.projection import MessageQuery
from conversa.app.service import ConversaService
from conversa.domain.errors import IdempotencyKeyMismatch, InvalidRequest
from conversa.notifications import (
    DispatchError,
    MessageChannel,
    NoRoute,
    NotificationDispatcher,
    UnknownNotificationChannel,
)


@dataclass
class User:
    phone: str | None

    def route_notification_for(self, channel: str) -> str | None:
        match channel:
            case "sms" | "whatsapp":
                return self.phone  # E.164, e.g. +15551234567
            case _:
                return None


def event_types(service: ConversaService, message_id: UUID) -> list[str]:
    return [type(e).__name__ for e in service.app.events.get(message_id)]


def test_the_service_registers_the_sms_and_whatsapp_channels(service: ConversaService) -> None:
    assert service.channels.channel_names() == ["sms", "whatsapp"]
    for name in ("sms", "whatsapp"):
        channel = service.channels.get_channel(name)
        assert isinstance(channel, MessageChannel)
        assert channel.get_channel_name() == name
    with pytest.raises(UnknownNotificationChannel, match="registered: sms, whatsapp"):
        service.channels.get_channel("email")


def test_the_sms_channel_records_one_message(service: ConversaService) -> None:
    user = User(phone="+1 (555) 123-4567")

    result = service.channels.get_channel("sms").send(
        user, {"body": "Your appointment is tomorrow at 9am"}
    )

    assert result.ok and result.status == "sent" and not result.replayed
    message = service.get_message(result.message_id)
    assert (message.channel, message.to, message.body, message.status) == (
        "sms",
        "+15551234567",
        "Your appointment is tomorrow at 9am",
        "sent",
    )
    assert event_types(service, result.message_id) == ["Queued", "Sent"]
    assert service.projector().catch_up() == 2  # these two events and nothing else
    assert service.list_messages(MessageQuery()).total == 1


def test_the_channel_passes_templates_and_options_to_the_service(
    service: ConversaService,
) -> None:
    data = {
        "template": {"name": "order_shipped", "variables": ["1Z999"]},
        "idempotency_key": "order-4711-shipped",
        "meta": {"order": 4711},
    }
    whatsapp = service.channels.get_channel("whatsapp")

    first = whatsapp.send(User("+447911123456"), data)
    again = whatsapp.send(User("+447911123456"), data)

    assert first.ok and not first.replayed
    assert again.replayed and again.message_id == first.message_id
    message = service.get_message(first.message_id)
    assert message.template == {"name": "order_shipped", "variables": ["1Z999"]}
    assert message.idempotency_key == "order-4711-shipped"
    assert message.meta == {"order": 4711}
    assert event_types(service, first.message_id) == ["Queued", "Sent"]


def test_the_dispatcher_records_one_message_per_channel(service: ConversaService) -> None:
    user = User(phone="+15551234567")

    results = NotificationDispatcher(service.channels).send(
        user, {"body": "Your order has shipped"}, ["sms", "whatsapp"]
    )

    assert list(results) == ["sms", "whatsapp"]
    assert all(result.ok for result in results.values())
    assert results["sms"].message_id != results["whatsapp"].message_id
    for name, result in results.items():
        assert event_types(service, result.message_id) == ["Queued", "Sent"]
        assert service.get_message(result.message_id).channel == name

    assert service.projector().catch_up() == 4
    page = service.list_messages(MessageQuery())
    assert page.total == 2
    assert {row.id for row in page.rows} == {r.message_id for r in results.values()}
    assert sorted(row.channel for row in page.rows) == ["sms", "whatsapp"]
    assert {row.to for row in page.rows} == {"+15551234567"}
    assert {row.body for row in page.rows} == {"Your order has shipped"}


def test_a_user_without_a_phone_gets_no_route_and_nothing_is_stored(
    service: ConversaService,
) -> None:
    service.send("sms", "+15551234567", {"body": "An earlier message"})
    head = service.app.recorder.max_notification_id()

    with pytest.raises(NoRoute) as refused:
        service.channels.get_channel("sms").send(User(phone=None), {"body": "Hello"})

    assert refused.value.field == "to"
    assert "sms" in refused.value.message
    assert service.app.recorder.max_notification_id() == head


def test_invalid_data_raises_the_services_error_and_stores_nothing(
    service: ConversaService,
) -> None:
    sms = service.channels.get_channel("sms")
    with pytest.raises(InvalidRequest) as unknown_key:
        sms.send(User("+15551234567"), {"body": "Hello", "subject": "Hi"})
    with pytest.raises(InvalidRequest) as both:
        sms.send(User("+15551234567"), {"body": "Hello", "template": {"name": "t"}})
    with pytest.raises(InvalidRequest) as bad_number:
        sms.send(User("12345"), {"body": "Hello"})

    assert [(type(e.value).__name__, e.value.field) for e in (unknown_key, both, bad_number)] == [
        ("InvalidRequest", "subject"),
        ("InvalidContent", "template"),
        ("InvalidPhoneNumber", "to"),
    ]
    assert not service.app.recorder.max_notification_id()


def test_one_idempotency_key_on_two_channels_sends_on_the_first_only(
    service: ConversaService,
) -> None:
    # An idempotency key names one message: the second channel's send is a different
    # request under the same key, refused, and reported without undoing the first.
    data = {"body": "Your order has shipped", "idempotency_key": "order-4711-shipped"}

    with pytest.raises(DispatchError) as failed:
        NotificationDispatcher(service.channels).send(
            User("+15551234567"), data, ["sms", "whatsapp"]
        )

    assert list(failed.value.results) == ["sms"]
    assert isinstance(failed.value.errors["whatsapp"], IdempotencyKeyMismatch)
    sent = failed.value.results["sms"]
    assert event_types(service, sent.message_id) == ["Queued", "Sent"]
    assert service.projector().catch_up() == 2
