"""Meta WhatsApp Cloud API webhooks, pure parts: the GET handshake, X-Hub-Signature-256 over
the raw bytes, and status notifications on the lattice.

Bodies are signed here with an independent ``hmac.new``, never with Conversa's own code.
Payload shapes follow shared/research/providers.md 2.2 (webhooks/reference/messages/status).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest

from conversa.adapters.providers.webhooks import MalformedWebhook, SignatureError
from conversa.adapters.providers.whatsapp_webhook import (
    MAX_STATUSES,
    MetaWebhook,
    parse_meta_webhook,
    verify_handshake,
    verify_meta_signature,
)
from conversa.domain.status import Status

APP_SECRET = "meta-app-secret-" + "5" * 16
VERIFY_TOKEN = "meta-verify-token-" + "3" * 10
WABA_ID = "102290129340398"
PHONE_ID = "106540352242922"
METADATA = {"display_phone_number": "15550783881", "phone_number_id": PHONE_ID}
MESSAGE_A = UUID("00000000-0000-4000-8000-0000000000a1")
MESSAGE_B = UUID("00000000-0000-4000-8000-0000000000b2")
WAMID_A = "wamid.HBgLMTY1MDUwNzY1MjAVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA"
WAMID_B = "wamid.HBgLMTY1MDUwNzY1MjAVAgARGBIyRkQ4OEE3QzVFNkI0RjI5NEQA"
RECIPIENT = "16505551234"


def sign(body: bytes, secret: str = APP_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def status(
    wamid: str,
    value: str,
    timestamp: str = "1750263773",
    message_id: UUID | None = None,
    **extra: Any,
) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": wamid,
        "status": value,
        "timestamp": timestamp,
        "recipient_id": RECIPIENT,
        **extra,
    }
    if message_id is not None:
        item["biz_opaque_callback_data"] = str(message_id)
    return item


def change(statuses: list[Any] | None = None, messages: list[Any] | None = None) -> dict[str, Any]:
    value: dict[str, Any] = {"messaging_product": "whatsapp", "metadata": METADATA}
    if statuses is not None:
        value["statuses"] = statuses
    if messages is not None:
        value["contacts"] = [{"profile": {"name": "Zoë"}, "wa_id": RECIPIENT}]
        value["messages"] = messages
    return {"field": "messages", "value": value}


def notification(*changes_per_entry: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": WABA_ID, "changes": changes} for changes in changes_per_entry],
    }


def body_of(payload: object) -> bytes:
    """As Meta sends it: non-ASCII as \\uXXXX escapes."""
    return json.dumps(payload).encode()


def inbound(text: str, wamid: str = "wamid.inbound1") -> dict[str, Any]:
    return {
        "from": RECIPIENT,
        "id": wamid,
        "timestamp": "1750263800",
        "type": "text",
        "text": {"body": text},
    }


FAILED = status(
    WAMID_B,
    "failed",
    message_id=MESSAGE_B,
    errors=[
        {
            "code": 131026,
            "title": "Message undeliverable",
            "message": "Message undeliverable",
            "error_data": {"details": "Message Undeliverable."},
            "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/",
        }
    ],
)
#: A notification with non-ASCII text (an inbound message and an error detail).
UNICODE = notification(
    [
        change(messages=[inbound("Olá! Ça va? 你好 👋")]),
        change(statuses=[status(WAMID_A, "delivered", message_id=MESSAGE_A)]),
    ]
)


# X-Hub-Signature-256


def test_the_raw_bytes_meta_sends_verify() -> None:
    body = body_of(UNICODE)
    assert b"\\u00e1" in body and b"\\ud83d\\udc4b" in body  # escaped, as Meta sends it
    verify_meta_signature(app_secret=APP_SECRET, raw_body=body, header=sign(body))


def test_the_same_payload_re_serialised_does_not_verify() -> None:
    body = body_of(UNICODE)
    again = json.dumps(json.loads(body), ensure_ascii=False).encode()
    assert json.loads(again) == json.loads(body)  # the same JSON value, other bytes
    assert again != body
    with pytest.raises(SignatureError, match="does not match"):
        verify_meta_signature(app_secret=APP_SECRET, raw_body=again, header=sign(body))
    # Compact separators are other bytes too, even for pure ASCII.
    ascii_body = body_of(notification([change(statuses=[status(WAMID_A, "read")])]))
    compact = json.dumps(json.loads(ascii_body), separators=(",", ":")).encode()
    with pytest.raises(SignatureError):
        verify_meta_signature(app_secret=APP_SECRET, raw_body=compact, header=sign(ascii_body))


@pytest.mark.parametrize("position", [0, 1, 50, -2, -1])
def test_one_changed_byte_fails(position: int) -> None:
    body = body_of(UNICODE)
    changed = bytearray(body)
    changed[position] ^= 0x01
    with pytest.raises(SignatureError):
        verify_meta_signature(app_secret=APP_SECRET, raw_body=bytes(changed), header=sign(body))


def test_a_wrong_secret_fails() -> None:
    body = body_of(UNICODE)
    with pytest.raises(SignatureError, match="does not match"):
        verify_meta_signature(app_secret=APP_SECRET, raw_body=body, header=sign(body, "other"))


@pytest.mark.parametrize("header", [None, "", "  "])
def test_a_missing_header_fails(header: str | None) -> None:
    with pytest.raises(SignatureError, match="missing"):
        verify_meta_signature(app_secret=APP_SECRET, raw_body=b"{}", header=header)


def test_the_legacy_sha1_header_fails() -> None:
    body = body_of(UNICODE)
    sha1 = "sha1=" + hmac.new(APP_SECRET.encode(), body, hashlib.sha1).hexdigest()
    with pytest.raises(SignatureError, match="sha256="):
        verify_meta_signature(app_secret=APP_SECRET, raw_body=body, header=sha1)
    # The right digest under the wrong prefix, or with no prefix at all.
    digest = sign(body).removeprefix("sha256=")
    for header in ("sha1=" + digest, digest, "SHA256=" + digest, "sha256:" + digest):
        with pytest.raises(SignatureError):
            verify_meta_signature(app_secret=APP_SECRET, raw_body=body, header=header)


@pytest.mark.parametrize("secret", [None, ""])
def test_no_secret_configured_fails_closed(secret: str | None) -> None:
    body = body_of(UNICODE)
    with pytest.raises(SignatureError, match="no WhatsApp app secret"):
        verify_meta_signature(app_secret=secret, raw_body=body, header=sign(body, ""))


@pytest.mark.parametrize(
    "header", ["sha256=", "sha256=zz", "sha256=" + "0" * 64, "sha256=" + "é" * 64]
)
def test_odd_digests_fail_cleanly(header: str) -> None:
    with pytest.raises(SignatureError):
        verify_meta_signature(app_secret=APP_SECRET, raw_body=b"{}", header=header)


def test_an_uppercase_hex_digest_and_surrounding_spaces_pass() -> None:
    body = body_of(UNICODE)
    digest = sign(body).removeprefix("sha256=")
    verify_meta_signature(app_secret=APP_SECRET, raw_body=body, header=f" sha256={digest.upper()} ")


def test_signature_errors_never_carry_the_secret_or_a_digest() -> None:
    body = body_of(UNICODE)
    wrong = sign(body, "other")
    for secret, header in ((APP_SECRET, wrong), (None, wrong), (APP_SECRET, "sha1=" + "a" * 40)):
        with pytest.raises(SignatureError) as caught:
            verify_meta_signature(app_secret=secret, raw_body=body, header=header)
        text = str(caught.value)
        assert APP_SECRET not in text
        assert sign(body).removeprefix("sha256=") not in text
        assert wrong.removeprefix("sha256=") not in text


# The GET handshake


def test_the_right_token_returns_the_challenge() -> None:
    challenge = "1158201444"
    assert (
        verify_handshake(
            mode="subscribe", token=VERIFY_TOKEN, challenge=challenge, verify_token=VERIFY_TOKEN
        )
        == challenge
    )


@pytest.mark.parametrize(
    ("mode", "token", "challenge", "verify_token"),
    [
        ("subscribe", "wrong", "1158201444", VERIFY_TOKEN),
        ("subscribe", VERIFY_TOKEN + "x", "1158201444", VERIFY_TOKEN),
        ("subscribe", VERIFY_TOKEN.upper(), "1158201444", VERIFY_TOKEN),
        ("subscribe", "", "1158201444", VERIFY_TOKEN),
        ("subscribe", None, "1158201444", VERIFY_TOKEN),
        ("unsubscribe", VERIFY_TOKEN, "1158201444", VERIFY_TOKEN),
        ("Subscribe", VERIFY_TOKEN, "1158201444", VERIFY_TOKEN),
        (None, VERIFY_TOKEN, "1158201444", VERIFY_TOKEN),
        ("subscribe", VERIFY_TOKEN, None, VERIFY_TOKEN),
        ("subscribe", VERIFY_TOKEN, "", VERIFY_TOKEN),
        # No verify token configured: nothing matches, not even an empty token.
        ("subscribe", "", "1158201444", None),
        ("subscribe", None, "1158201444", None),
        ("subscribe", "", "1158201444", ""),
        ("subscribe", "anything", "1158201444", None),
        ("subscribe", "é", "1158201444", VERIFY_TOKEN),
    ],
)
def test_a_wrong_or_missing_handshake_fails(
    mode: str | None, token: str | None, challenge: str | None, verify_token: str | None
) -> None:
    with pytest.raises(SignatureError) as caught:
        verify_handshake(mode=mode, token=token, challenge=challenge, verify_token=verify_token)
    assert VERIFY_TOKEN not in str(caught.value)


# Parsing


def test_a_batch_of_entries_changes_and_statuses() -> None:
    payload = notification(
        [
            change(
                statuses=[
                    # read before delivered: both reported, the lattice sorts them out
                    status(WAMID_A, "read", "1750263775", MESSAGE_A),
                    status(
                        WAMID_A,
                        "delivered",
                        "1750263774",
                        MESSAGE_A,
                        conversation={"id": "c1", "origin": {"type": "utility"}},
                        pricing={
                            "billable": True,
                            "pricing_model": "PMP",
                            "type": "regular",
                            "category": "utility",
                        },
                    ),
                ]
            ),
            change(messages=[inbound("hi"), inbound("again", "wamid.inbound2")]),
        ],
        [
            change(statuses=[FAILED, status(WAMID_A, "sent", "1750263773", MESSAGE_A)]),
            change(
                statuses=[
                    status("wamid.other", "deleted"),
                    status("wamid.voice", "played", "1750263790"),
                    status("wamid.x", "warning"),
                ],
                messages=[inbound("third", "wamid.inbound3")],
            ),
        ],
    )
    webhook = parse_meta_webhook(body_of(payload))
    assert isinstance(webhook, MetaWebhook)
    assert webhook.inbound_messages == 3
    assert webhook.ignored_statuses == 2
    assert [(r.provider_message_id, r.status, r.raw_status) for r in webhook.reports] == [
        (WAMID_A, Status.READ, "read"),
        (WAMID_A, Status.DELIVERED, "delivered"),
        (WAMID_B, Status.FAILED, "failed"),
        (WAMID_A, Status.SENT, "sent"),
        ("wamid.voice", Status.READ, "played"),
    ]
    read, delivered, failed, sent, played = webhook.reports
    assert {r.provider for r in webhook.reports} == {"whatsapp_cloud"}
    assert (read.message_id, failed.message_id, played.message_id) == (MESSAGE_A, MESSAGE_B, None)
    assert read.occurred_at == datetime(2025, 6, 18, 16, 22, 55, tzinfo=UTC)
    assert delivered.occurred_at == datetime.fromtimestamp(1750263774, tz=UTC)
    assert failed.error_code == "131026"
    assert failed.error_message == "Message undeliverable: Message Undeliverable."
    for report in (read, delivered, sent, played):
        assert (report.error_code, report.error_message) == (None, None)
    # In any order, the join is "failed" for B and "read" for A.
    final: dict[str | None, Status] = {}
    for report in webhook.reports:
        final[report.provider_message_id] = final.get(
            report.provider_message_id, Status.QUEUED
        ).merge(report.status)
    assert final[WAMID_A] is Status.READ
    assert final[WAMID_B] is Status.FAILED


@pytest.mark.parametrize(
    ("errors", "code", "message"),
    [
        (
            [
                {
                    "code": 131047,
                    "title": "Re-engagement message",
                    "message": "Re-engagement message",
                    "error_data": {
                        "details": "Message failed to send because more than 24 hours have "
                        "passed since the customer last replied to this number."
                    },
                }
            ],
            "131047",
            "Re-engagement message: Message failed to send because more than 24 hours have "
            "passed since the customer last replied to this number.",
        ),
        (
            [{"code": "130472", "title": "User's number is part of an experiment"}],
            "130472",
            "User's number is part of an experiment",
        ),
        ([{"title": "Unknown error", "message": "Unknown"}], None, "Unknown error: Unknown"),
        ([{"code": 131000}], "131000", None),
        ([], None, None),
        ("not a list", None, None),
        (["not an object"], None, None),
        (None, None, None),
    ],
)
def test_a_failed_status_keeps_the_first_error(
    errors: object, code: str | None, message: str | None
) -> None:
    item = status(WAMID_B, "failed", message_id=MESSAGE_B)
    if errors is not None:
        item["errors"] = errors
    (report,) = parse_meta_webhook(body_of(notification([change(statuses=[item])]))).reports
    assert report.status is Status.FAILED
    assert (report.error_code, report.error_message) == (code, message)


def test_errors_on_a_status_that_did_not_fail_are_not_kept() -> None:
    item = status(WAMID_A, "sent", errors=[{"code": 131026, "title": "x"}])
    (report,) = parse_meta_webhook(body_of(notification([change(statuses=[item])]))).reports
    assert (report.error_code, report.error_message) == (None, None)


def test_a_long_error_message_is_cut() -> None:
    item = status(WAMID_B, "failed", errors=[{"code": 1, "title": "x" * 5000}])
    (report,) = parse_meta_webhook(body_of(notification([change(statuses=[item])]))).reports
    assert report.error_message is not None
    assert len(report.error_message) <= 500


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1750263773", datetime(2025, 6, 18, 16, 22, 53, tzinfo=UTC)),
        (1750263773, datetime(2025, 6, 18, 16, 22, 53, tzinfo=UTC)),
        ("0", datetime(1970, 1, 1, tzinfo=UTC)),
        ("", None),
        ("soon", None),
        ("-5", None),
        ("1750263773.5", None),
        ("²", None),
        ("9" * 30, None),
        ("9" * 5000, None),
        (True, None),
        (None, None),
        (1.5, None),
        ({"s": 1}, None),
    ],
)
def test_a_bad_timestamp_is_no_time_not_an_error(value: object, expected: object) -> None:
    item = status(WAMID_A, "delivered")
    item["timestamp"] = value
    (report,) = parse_meta_webhook(body_of(notification([change(statuses=[item])]))).reports
    assert report.occurred_at == expected


@pytest.mark.parametrize(
    "opaque", ["", "order-42", "12345", str(MESSAGE_A) + "0", 42, None, {"id": str(MESSAGE_A)}]
)
def test_an_invalid_callback_data_is_no_message_id(opaque: object) -> None:
    item = status(WAMID_A, "delivered", biz_opaque_callback_data=opaque)
    (report,) = parse_meta_webhook(body_of(notification([change(statuses=[item])]))).reports
    assert report.message_id is None
    assert report.provider_message_id == WAMID_A


def test_inbound_messages_are_counted_and_parsed() -> None:
    payload = notification([change(messages=[inbound("a"), inbound("b", "wamid.2")])])
    hook = parse_meta_webhook(body_of(payload))
    assert (hook.reports, hook.inbound_messages, hook.ignored_statuses) == ([], 2, 0)
    assert [(m.provider_message_id, m.body, m.kind) for m in hook.inbound] == [
        ("wamid.inbound1", "a", "text"),
        ("wamid.2", "b", "text"),
    ]
    assert {(m.sender, m.recipient, m.profile_name) for m in hook.inbound} == {
        ("+16505551234", "+15550783881", "Zoë")
    }


def test_other_fields_are_skipped_unread() -> None:
    payload = notification(
        [
            {"field": "message_template_status_update", "value": {"event": "APPROVED"}},
            {"field": "account_update", "value": "anything at all"},
            {"value": ["no field"]},
            change(statuses=[status(WAMID_A, "sent")]),
        ]
    )
    webhook = parse_meta_webhook(body_of(payload))
    assert [r.status for r in webhook.reports] == [Status.SENT]


def test_a_value_level_errors_notification_has_no_reports() -> None:
    payload = notification(
        [
            {
                "field": "messages",
                "value": {
                    "messaging_product": "whatsapp",
                    "metadata": METADATA,
                    "errors": [{"code": 131051, "title": "Message type unknown"}],
                },
            }
        ]
    )
    assert parse_meta_webhook(body_of(payload)) == MetaWebhook([], 0, 0)


def test_empty_lists_are_fine() -> None:
    assert parse_meta_webhook(body_of(notification())) == MetaWebhook([], 0, 0)
    assert parse_meta_webhook(body_of(notification([]))) == MetaWebhook([], 0, 0)
    assert parse_meta_webhook(body_of(notification([change(statuses=[], messages=[])]))) == (
        MetaWebhook([], 0, 0)
    )


def test_unknown_fields_are_ignored() -> None:
    payload = notification([change(statuses=[status(WAMID_A, "read", recipient_type="group")])])
    payload["new_top_level"] = {"x": 1}
    payload["entry"][0]["time"] = 1750263800
    payload["entry"][0]["changes"][0]["value"]["new_value_field"] = [1, 2]
    (report,) = parse_meta_webhook(body_of(payload)).reports
    assert report.status is Status.READ


def test_a_thousand_statuses_are_fine_and_one_more_is_malformed() -> None:
    many = [status(f"wamid.{i}", "delivered") for i in range(MAX_STATUSES)]
    assert MAX_STATUSES == 1000
    webhook = parse_meta_webhook(body_of(notification([change(statuses=many)])))
    assert len(webhook.reports) == 1000
    with pytest.raises(MalformedWebhook, match="1000"):
        parse_meta_webhook(
            body_of(notification([change(statuses=[*many, status("wamid.x", "read")])]))
        )
    # Counted across entries and changes, whatever their values.
    half = [status(f"wamid.{i}", "deleted") for i in range(500)]
    split = notification([change(statuses=half), change(statuses=half)], [change(statuses=half)])
    with pytest.raises(MalformedWebhook):
        parse_meta_webhook(body_of(split))


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"\xff\xfe{",
        b"{",
        b"[]",
        b'"whatsapp_business_account"',
        b"null",
        b"[" * 100_000,
        b"{}",
        b'{"object": "page", "entry": []}',
        b'{"object": "whatsapp_business_account"}',
        b'{"object": "whatsapp_business_account", "entry": {}}',
        b'{"object": "whatsapp_business_account", "entry": null}',
        b'{"object": "whatsapp_business_account", "entry": ["x"]}',
        b'{"object": "whatsapp_business_account", "entry": [{"changes": {}}]}',
        b'{"object": "whatsapp_business_account", "entry": [{"changes": [7]}]}',
        b'{"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "messages"}]}]}',
        b'{"object": "whatsapp_business_account", "entry": [{"changes": '
        b'[{"field": "messages", "value": []}]}]}',
    ],
)
def test_garbage_is_malformed(body: bytes) -> None:
    with pytest.raises(MalformedWebhook):
        parse_meta_webhook(body)


@pytest.mark.parametrize(
    "value",
    [
        {"statuses": {"id": WAMID_A, "status": "read"}},
        {"statuses": ["read"]},
        {"statuses": [None]},
        {"statuses": [{"status": "read"}]},
        {"statuses": [{"id": "", "status": "read"}]},
        {"statuses": [{"id": 5, "status": "read"}]},
        {"statuses": [{"id": WAMID_A}]},
        {"statuses": [{"id": WAMID_A, "status": None}]},
        {"statuses": [{"id": WAMID_A, "status": ""}]},
        {"statuses": [{"id": WAMID_A, "status": 3}]},
        {"messages": "hello"},
    ],
)
def test_structurally_wrong_items_are_malformed(value: dict[str, Any]) -> None:
    payload = notification(
        [change(statuses=[status(WAMID_B, "sent")]), {"field": "messages", "value": value}]
    )
    with pytest.raises(MalformedWebhook):
        parse_meta_webhook(body_of(payload))


def test_malformed_errors_never_echo_the_body() -> None:
    secretish = "Olá, my PIN is 8351"
    with pytest.raises(MalformedWebhook) as caught:
        parse_meta_webhook(body_of({"object": "whatsapp_business_account", "entry": [secretish]}))
    assert secretish not in str(caught.value)


def test_a_failure_message_quoting_the_recipient_is_masked() -> None:
    payload = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "1",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "statuses": [
                                {
                                    "id": "wamid.X",
                                    "status": "failed",
                                    "timestamp": "1700000000",
                                    "recipient_id": "15551234567",
                                    "errors": [
                                        {
                                            "code": 131026,
                                            "title": "Message undeliverable to 15551234567",
                                        }
                                    ],
                                }
                            ]
                        },
                    }
                ],
            }
        ],
    }
    (report,) = parse_meta_webhook(json.dumps(payload).encode()).reports
    assert report.error_message is not None
    assert "15551234567" not in report.error_message
    assert "+15*******67" in report.error_message
