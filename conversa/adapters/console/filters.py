"""The Messages page's filters: read from the query string, leniently (a bad value is
shown as an error next to the filters, never a 422), into a read-model query."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlencode

from starlette.datastructures import QueryParams

from conversa.app.projection import MessageQuery
from conversa.domain.errors import InvalidRequest
from conversa.domain.phone import PhoneNumber

STATUSES = (
    "queued",
    "sent",
    "delivered",
    "read",
    "failed",
    "undelivered",
    "cancelled",
    "received",
)
CHANNELS = ("sms", "whatsapp")
DIRECTIONS = ("outbound", "inbound")
DRIVERS = ("log", "twilio", "vonage", "africastalking", "whatsapp_cloud")
PER_PAGE = 50
#: Past this many rows, a filter the exact counters cannot answer shows "10,000+".
COUNT_LIMIT = 10_000
MAX_PAGE = 10_000
#: The fields of the filter form, in the order of the query string.
FIELDS = ("status", "channel", "direction", "driver", "number", "since", "until")


@dataclass
class ListFilters:
    """The filter form's values as typed, the query they make, and what was wrong."""

    values: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    query: MessageQuery = field(default_factory=MessageQuery)

    def url(self, page: int | None = None, path: str = "") -> str:
        """This list's URL (on another page, or another path such as the live rows)."""
        params = {name: value for name, value in self.values.items() if value}
        if page is not None and page > 1:
            params["page"] = str(page)
        return path + ("?" + urlencode(params) if params else "")


def parse_filters(params: QueryParams) -> ListFilters:
    values = {name: params.get(name, "").strip() for name in FIELDS}
    errors: dict[str, str] = {}

    def choice(name: str, allowed: tuple[str, ...]) -> str | None:
        value = values[name]
        if not value:
            return None
        if value not in allowed:
            errors[name] = f"{name} must be one of {', '.join(allowed)}"
            return None
        return value

    status = choice("status", STATUSES)
    channel = choice("channel", CHANNELS)
    direction = choice("direction", DIRECTIONS)
    driver = choice("driver", DRIVERS)
    number = _number(values["number"], errors)
    since = _moment(values["since"], "since", errors)
    until = _moment(values["until"], "until", errors)
    page = params.get("page", "1")
    page_number = int(page) if page.isascii() and page.isdigit() else 1
    query = MessageQuery(
        status=status,
        channel=channel,
        direction=direction,
        driver=driver,
        to=number,
        since=since,
        until=until,
        page=min(max(page_number, 1), MAX_PAGE),
        per_page=PER_PAGE,
        count_limit=COUNT_LIMIT,
    )
    if number:
        values["number"] = number
    return ListFilters(values=values, errors=errors, query=query)


def _number(raw: str, errors: dict[str, str]) -> str | None:
    """A number in any spelling (spaces, dashes, brackets, ``00`` or no ``+``) as E.164."""
    if not raw:
        return None
    text = "".join(ch for ch in raw if ch.isdigit() or ch == "+")
    if text.startswith("00"):
        text = "+" + text[2:]
    elif not text.startswith("+"):
        text = "+" + text
    try:
        return PhoneNumber.parse(text, field="number").e164
    except InvalidRequest:
        errors["number"] = "number must be a phone number with its country code"
        return None


def _moment(raw: str, name: str, errors: dict[str, str]) -> datetime | None:
    """A ``datetime-local`` value (taken as UTC) or an RFC 3339 time with an offset."""
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        errors[name] = f"{name} must be a date and time, like 2026-01-31T14:00"
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
