"""Meta's inbound WhatsApp messages (``value.messages[]`` of a ``messages`` change), parsed
into :class:`~conversa.app.inbound.InboundReport`; without HTTP or storage.

Each message has ``from`` (the contact's WhatsApp id: digits of the number), ``id`` (the
``wamid``), ``timestamp`` and ``type``; the content sits under the key of its type:

- ``text``: ``{"body"}``; ``button`` (a template's quick reply): ``{"text", "payload"}``;
- ``interactive``: ``{"type": "button_reply" | "list_reply", ...: {"id", "title"[,
  "description"]}}``;
- ``image``, ``audio``, ``video``, ``document``, ``sticker``: ``{"id", "mime_type",
  "caption"?, "filename"?}``, fetched later through the Graph API with the token;
- ``location``: ``{"latitude", "longitude", "name"?, "address"?}``;
- ``contacts``: a list of shared contact cards; ``reaction``: ``{"message_id", "emoji"}``;
- anything else (``unsupported``, ``order``, ``system``, types Meta adds) is kept with its
  ``type`` as ``unsupported``.

``value.metadata.display_phone_number`` is our number; ``value.contacts[]`` gives each
sender's profile name by ``wa_id``; ``context.id`` names the message it replies to.
"""

from __future__ import annotations

from typing import Any, Final

from conversa.adapters.providers.webhooks import MalformedWebhook, storable_id, storable_text
from conversa.app.inbound import InboundReport
from conversa.domain.channel import Channel
from conversa.domain.errors import InvalidPhoneNumber
from conversa.domain.phone import PhoneNumber

PROVIDER: Final = "whatsapp_cloud"
MEDIA_KINDS: Final = ("image", "audio", "video", "document", "sticker")
KNOWN_KINDS: Final = ("text", "button", "interactive", "location", "contacts", "reaction")


def parse_meta_messages(value: dict[str, Any]) -> list[InboundReport]:
    """The inbound messages of one change's ``value``, in order."""
    messages = value.get("messages")
    if not messages:
        return []
    if not isinstance(messages, list):
        raise MalformedWebhook("'messages' is not a list")
    metadata = value.get("metadata")
    display = metadata.get("display_phone_number") if isinstance(metadata, dict) else None
    if not isinstance(display, str) or not display.strip():
        raise MalformedWebhook("the change has messages but no metadata.display_phone_number")
    recipient = _number(display, "metadata.display_phone_number")
    names = _profile_names(value.get("contacts"))
    return [_message(item, recipient, names) for item in messages]


def _profile_names(contacts: object) -> dict[str, str]:
    names: dict[str, str] = {}
    if not isinstance(contacts, list):
        return names
    for contact in contacts:
        if not isinstance(contact, dict):
            continue
        profile = contact.get("profile")
        name = profile.get("name") if isinstance(profile, dict) else None
        wa_id = contact.get("wa_id")
        if isinstance(wa_id, str) and isinstance(name, str) and name.strip():
            names[wa_id] = storable_text(name.strip())
    return names


def _message(item: object, recipient: str, names: dict[str, str]) -> InboundReport:
    if not isinstance(item, dict):
        raise MalformedWebhook("a message is not an object")
    wamid, sender, kind = item.get("id"), item.get("from"), item.get("type")
    if not isinstance(wamid, str) or not wamid:
        raise MalformedWebhook("a message has no 'id'")
    if not isinstance(sender, str) or not sender:
        raise MalformedWebhook("a message has no 'from'")
    storable_id(wamid, "a message's 'id'")
    kind = kind if isinstance(kind, str) and kind else "unsupported"
    content = item.get(kind)
    content = content if isinstance(content, dict | list) else {}
    body, media, details = _content(kind, content)
    context = item.get("context")
    context_id = context.get("id") if isinstance(context, dict) else None
    return InboundReport(
        provider=PROVIDER,
        provider_message_id=wamid,
        channel=Channel.WHATSAPP,
        sender=_number(sender, "a message's 'from'"),
        recipient=recipient,
        body=storable_text(body) if body else None,
        kind=kind if kind in KNOWN_KINDS or kind in MEDIA_KINDS else "unsupported",
        media=media,
        details=details if kind in KNOWN_KINDS or kind in MEDIA_KINDS else {"type": kind},
        profile_name=names.get(sender),
        context_id=context_id if isinstance(context_id, str) and context_id else None,
    )


def _content(
    kind: str, content: dict[str, Any] | list[Any]
) -> tuple[str | None, list[dict[str, Any]], dict[str, Any] | None]:
    """(body, media, details) of one message's content."""
    if isinstance(content, list):  # contacts: a list of cards
        return None, [], {"contacts": content} if kind == "contacts" else None
    if kind == "text":
        return _text(content.get("body")), [], None
    if kind == "button":
        text = _text(content.get("text"))
        return text, [], {"text": text, "payload": _text(content.get("payload"))}
    if kind == "interactive":
        reply_type = content.get("type")
        reply = content.get(reply_type) if isinstance(reply_type, str) else None
        if not isinstance(reply, dict):
            return None, [], {"type": reply_type}
        title = _text(reply.get("title"))
        return title, [], {"type": reply_type, "id": _text(reply.get("id")), "title": title}
    if kind in MEDIA_KINDS:
        media_id = content.get("id")
        if not isinstance(media_id, str) or not media_id:
            raise MalformedWebhook(f"a {kind} message has no media 'id'")
        entry: dict[str, Any] = {
            "content_type": _text(content.get("mime_type")) or "application/octet-stream",
            "id": storable_id(media_id, "a media 'id'"),
        }
        caption = _text(content.get("caption"))
        if caption:
            entry["caption"] = storable_text(caption)
        filename = _text(content.get("filename"))
        if filename:
            entry["filename"] = storable_text(filename)
        return caption, [entry], None
    if kind == "location":
        keep = ("latitude", "longitude", "name", "address", "url")
        return None, [], {k: content[k] for k in keep if k in content}
    if kind == "reaction":
        return (
            _text(content.get("emoji")),
            [],
            {
                "message_id": _text(content.get("message_id")),
                "emoji": _text(content.get("emoji")),
            },
        )
    return None, [], None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _number(digits: str, what: str) -> str:
    text = digits.strip()
    if not text.startswith("+"):
        text = "+" + text
    try:
        return PhoneNumber.parse(text).e164
    except InvalidPhoneNumber:
        raise MalformedWebhook(f"{what} is not a phone number") from None
