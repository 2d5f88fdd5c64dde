"""``conversa conversations list|show``: conversation threads from the shell."""

from __future__ import annotations

import json
from uuid import UUID

import click

from conversa.app.conversations import ConversationQuery
from conversa.app.messages import ConversationNotFound
from conversa.app.results import MessageState
from conversa.domain.channel import Channel
from conversa.domain.errors import InvalidPhoneNumber
from conversa.domain.phone import PhoneNumber


@click.group()
def conversations() -> None:
    """Conversation threads: both directions with one contact on one of our numbers."""


@conversations.command(name="list")
@click.option("--channel", type=click.Choice([c.value for c in Channel]), default=None)
@click.option("--contact", default=None, help="The contact's number (E.164).")
@click.option("--page", default=1, type=click.IntRange(1, 1_000_000))
@click.option("--per-page", default=25, type=click.IntRange(1, 100))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_command(
    channel: str | None, contact: str | None, page: int, per_page: int, as_json: bool
) -> None:
    """Conversations, newest activity first."""
    from conversa.adapters.cli import fail, load_settings, opened_service

    if contact is not None:
        try:
            contact = PhoneNumber.parse(contact, field="contact").e164
        except InvalidPhoneNumber as error:
            fail(f"contact: {error.message}", 2)
    query = ConversationQuery(channel=channel, contact=contact, page=page, per_page=per_page)
    with opened_service(load_settings()) as service:
        found = service.list_conversations(query)
    if as_json:
        data = [row.as_dict() for row in found.rows]
        meta = {"page": page, "per_page": per_page, "total": found.total}
        click.echo(json.dumps({"data": data, "meta": meta}, indent=2))
        return
    rows = [("ID", "CHANNEL", "CONTACT", "IN", "OUT", "LAST MESSAGE")]
    rows += [
        (
            str(r.id),
            r.channel,
            r.contact,
            str(r.inbound_count),
            str(r.outbound_count),
            r.last_message_at.strftime("%Y-%m-%d %H:%M:%SZ"),
        )
        for r in found.rows
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    click.echo(f"{found.total} conversation(s)", err=True)


@conversations.command(name="show")
@click.argument("conversation_id")
@click.option("--page", default=1, type=click.IntRange(1, 1_000_000))
@click.option("--per-page", default=100, type=click.IntRange(1, 100))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def show_command(conversation_id: str, page: int, per_page: int, as_json: bool) -> None:
    """One conversation and its messages, oldest first."""
    from conversa.adapters.cli import fail, load_settings, opened_service

    try:
        parsed = UUID(conversation_id)
    except ValueError:
        fail(f"no conversation with id {conversation_id}")
    with opened_service(load_settings()) as service:
        try:
            row, messages = service.conversation(parsed, page, per_page)
        except ConversationNotFound as error:
            fail(str(error).strip("'\""))
    resources = [MessageState.of_row(m).as_dict() for m in messages]
    if as_json:
        click.echo(json.dumps({**row.as_dict(), "messages": resources}, indent=2))
        return
    window = row.window_expires_at
    click.echo(f"{row.channel} conversation of {row.contact} with {row.business_number or '?'}")
    if window is not None:
        click.echo(f"customer service window closes {window.strftime('%Y-%m-%d %H:%M:%SZ')}")
    for message in resources:
        arrow = "<-" if message["direction"] == "inbound" else "->"
        text = message.get("body") or (message.get("template") or {}).get("name") or ""
        media = f" [{len(message['media'])} attachment(s)]" if message.get("media") else ""
        click.echo(f"{message['created_at']}  {arrow} {message['status']:<10} {text}{media}")
