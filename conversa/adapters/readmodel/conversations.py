"""``conversa_conversations``: its columns, and the one statement that computes its rows
from ``conversa_messages`` (both stores; the projection runs it for the conversations a
batch touched, a rebuild for all), so that a rebuild gives what following live gave."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from conversa.adapters.readmodel.columns import TABLE
from conversa.app.conversations import ConversationQuery, ConversationRow

CONVERSATIONS = "conversa_conversations"
CONVERSATION_COLUMNS = (
    "id",
    "channel",
    "contact",
    "business_number",
    "last_message_at",
    "last_inbound_at",
    "inbound_count",
    "outbound_count",
)
CONVERSATION_INDEXES = {
    "conversa_conversations_newest_idx": "last_message_at DESC, id DESC",
    "conversa_conversations_contact_idx": "contact, last_message_at DESC, id DESC",
    "conversa_conversations_channel_idx": "channel, last_message_at DESC, id DESC",
}

_INBOUND = "direction = 'inbound'"
#: Each conversation's row, from its messages' rows (``{messages}`` and ``{where}`` are
#: filled in by the store).
SELECT_CONVERSATIONS = (
    "SELECT conversation_id, min(channel), "
    f"min(CASE WHEN {_INBOUND} THEN sender ELSE recipient END), "
    f"coalesce(min(CASE WHEN {_INBOUND} THEN recipient END), "
    "min(trim(replace(sender, 'whatsapp:', '')))), "
    "max(created_at), "
    f"max(CASE WHEN {_INBOUND} THEN created_at END), "
    f"sum(CASE WHEN {_INBOUND} THEN 1 ELSE 0 END), "
    f"sum(CASE WHEN {_INBOUND} THEN 0 ELSE 1 END) "
    "FROM {messages} WHERE conversation_id IS NOT NULL{where} GROUP BY conversation_id"
)
UPSERT_SUFFIX = " ON CONFLICT (id) DO UPDATE SET " + ", ".join(
    f"{c} = excluded.{c}" for c in CONVERSATION_COLUMNS if c != "id"
)
MESSAGES = TABLE


def conversation_filters(query: ConversationQuery) -> dict[str, str]:
    filters = {"channel": query.channel, "contact": query.contact}
    return {column: value for column, value in filters.items() if value is not None}


def conversation_from_record(record: Any) -> ConversationRow:
    values = dict(record)
    raw_id = values["id"]
    return ConversationRow(
        id=raw_id if isinstance(raw_id, UUID) else UUID(raw_id),
        channel=values["channel"],
        contact=values["contact"],
        business_number=values["business_number"],
        last_message_at=values["last_message_at"],
        last_inbound_at=values["last_inbound_at"],
        inbound_count=int(values["inbound_count"]),
        outbound_count=int(values["outbound_count"]),
    )
