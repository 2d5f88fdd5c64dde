"""The columns of ``conversa_messages``, shared by the PostgreSQL and SQLite views."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from conversa.app.projection import COUNTED, MessagePage, MessageQuery, MessageRow

TABLE = "conversa_messages"

COLUMNS = (
    "id",
    "channel",
    "recipient",
    "sender",
    "driver",
    "status",
    "body",
    "template",
    "provider_message_id",
    "attempts",
    "error_code",
    "error_message",
    "idempotency_key",
    "meta",
    "created_at",
    "updated_at",
    "version",
    "next_attempt_at",
    "direction",
    "conversation_id",
    "media",
    "reply_to",
    "category",
    "scheduled_at",
)

# Every filter of GET /conversa/messages is served by an index ending in the sort order.
INDEXES = {
    "conversa_messages_newest_idx": "created_at DESC, id DESC",
    "conversa_messages_status_idx": "status, created_at DESC, id DESC",
    "conversa_messages_channel_idx": "channel, created_at DESC, id DESC",
    # Both counted filters at once: a rare combination (failed on whatsapp) would
    # otherwise walk many rows of the status index to fill a page.
    "conversa_messages_channel_status_idx": "channel, status, created_at DESC, id DESC",
    "conversa_messages_recipient_idx": "recipient, created_at DESC, id DESC",
    "conversa_messages_direction_idx": "direction, created_at DESC, id DESC",
    "conversa_messages_driver_idx": "driver, created_at DESC, id DESC",
    # A conversation's thread, oldest first.
    "conversa_messages_conversation_idx": "conversation_id, created_at, id",
}
#: The dispatcher's scan for due attempts; only messages still waiting have a time.
DUE_INDEX = "conversa_messages_due_idx"
DUE_INDEX_COLUMNS = "next_attempt_at) WHERE (next_attempt_at IS NOT NULL"


#: Exact row counters by the columns of :data:`~conversa.app.projection.COUNTED`.
COUNTS_TABLE = "conversa_messages_counts"
#: The columns a row's later events can change; the others are fixed by ``Queued``.
MUTABLE = (
    "driver",  # a failover list's member that sent it
    "status",
    "provider_message_id",
    "attempts",
    "error_code",
    "error_message",
    "updated_at",
    "version",
    "next_attempt_at",
    # A message queued without a ``from``: the number its driver sent from, and with it
    # the conversation it belongs to, come with its Sent.
    "sender",
    "conversation_id",
)


def counted_filters(query: MessageQuery) -> dict[str, str] | None:
    """The query's filters when the counters can answer its total (all are counted
    columns), else None (a ``to`` filter: count the rows over its index)."""
    filters = query_filters(query)
    if set(filters) <= set(COUNTED) and query.since is None and query.until is None:
        return filters
    return None


def query_ranges(query: MessageQuery) -> dict[str, datetime]:
    """The list query's time range: ``since`` (inclusive) and ``until`` (exclusive) of
    ``created_at``, when given."""
    ranges = {"since": query.since, "until": query.until}
    return {name: moment for name, moment in ranges.items() if moment is not None}


#: The comparison of ``created_at`` each range bound makes.
RANGE_OPERATORS = {"since": ">=", "until": "<"}


def row_params(row: MessageRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "channel": row.channel,
        "recipient": row.to,
        "sender": row.sender,
        "driver": row.driver,
        "status": row.status,
        "body": row.body,
        "template": row.template,
        "provider_message_id": row.provider_message_id,
        "attempts": row.attempts,
        "error_code": row.error_code,
        "error_message": row.error_message,
        "idempotency_key": row.idempotency_key,
        "meta": row.meta,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
        "version": row.version,
        "next_attempt_at": row.next_attempt_at,
        "direction": row.direction,
        "conversation_id": row.conversation_id,
        "media": row.media,
        "reply_to": row.reply_to,
        "category": row.category,
        "scheduled_at": row.scheduled_at,
    }


def row_from_record(record: Any) -> MessageRow:
    """A row from a database record whose values are already Python types."""
    return MessageRow(
        id=record["id"] if isinstance(record["id"], UUID) else UUID(record["id"]),
        channel=record["channel"],
        to=record["recipient"],
        sender=record["sender"],
        driver=record["driver"],
        status=record["status"],
        body=record["body"],
        template=record["template"],
        provider_message_id=record["provider_message_id"],
        attempts=record["attempts"],
        error_code=record["error_code"],
        error_message=record["error_message"],
        idempotency_key=record["idempotency_key"],
        meta=record["meta"],
        created_at=record["created_at"],
        updated_at=record["updated_at"],
        version=record["version"],
        next_attempt_at=record["next_attempt_at"],
        direction=record["direction"],
        conversation_id=_uuid(record["conversation_id"]),
        media=record["media"],
        reply_to=_uuid(record["reply_to"]),
        category=record["category"],
        scheduled_at=record["scheduled_at"],
    )


def _uuid(value: Any) -> UUID | None:
    if value is None or isinstance(value, UUID):
        return value
    return UUID(value)


def query_filters(query: MessageQuery) -> dict[str, str]:
    """The column filters of a list query, by column name."""
    filters = {
        "direction": query.direction,
        "status": query.status,
        "channel": query.channel,
        "recipient": query.to,
        "driver": query.driver,
    }
    return {column: value for column, value in filters.items() if value is not None}


def bounded_page(rows: list[MessageRow], total: int, query: MessageQuery) -> MessagePage:
    """The page, its total marked inexact when the count stopped at the query's limit (the
    counters' totals are exact, whatever their size)."""
    bounded = query.count_limit is not None and counted_filters(query) is None
    if bounded and query.count_limit is not None and total > query.count_limit:
        return MessagePage(rows=rows, total=query.count_limit, total_exact=False)
    return MessagePage(rows=rows, total=total)
