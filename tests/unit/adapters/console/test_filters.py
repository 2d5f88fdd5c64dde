"""The Messages page's filters: typed leniently, turned into a read-model query."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from starlette.datastructures import QueryParams

from conversa.adapters.console.filters import COUNT_LIMIT, PER_PAGE, parse_filters


@pytest.mark.parametrize(
    "spelling",
    [
        "+447700900123",
        "447700900123",
        "0044 7700 900123",
        "+44 (7700) 900-123",
        " +44 7700 900123 ",
    ],
)
def test_a_number_in_any_spelling_filters_by_its_e164_form(spelling: str) -> None:
    filters = parse_filters(QueryParams({"number": spelling}))
    assert filters.errors == {}
    assert filters.query.to == "+447700900123"
    assert filters.values["number"] == "+447700900123"


def test_every_filter_reaches_the_query_and_the_page_links_keep_them() -> None:
    filters = parse_filters(
        QueryParams(
            {
                "status": "failed",
                "channel": "whatsapp",
                "direction": "outbound",
                "driver": "twilio",
                "since": "2026-01-31T14:00",
                "until": "2026-02-01T09:30:00+01:00",
                "page": "3",
            }
        )
    )
    query = filters.query
    assert (query.status, query.channel, query.direction, query.driver) == (
        "failed",
        "whatsapp",
        "outbound",
        "twilio",
    )
    assert query.since == datetime(2026, 1, 31, 14, 0, tzinfo=UTC)  # taken as UTC
    assert query.until == datetime(2026, 2, 1, 8, 30, tzinfo=UTC)
    assert (query.page, query.per_page, query.count_limit) == (3, PER_PAGE, COUNT_LIMIT)
    url = filters.url(page=4, path="/x")
    assert url.startswith("/x?status=failed&channel=whatsapp&direction=outbound&driver=twilio")
    assert url.endswith("&page=4")
    assert "page" not in filters.url(page=1)


def test_bad_values_are_reported_by_field_and_filter_nothing() -> None:
    filters = parse_filters(
        QueryParams(
            {
                "status": "lost",
                "driver": "pigeon",
                "number": "12",
                "since": "yesterday",
                "page": "x",
            }
        )
    )
    assert set(filters.errors) == {"status", "driver", "number", "since"}
    query = filters.query
    assert (query.status, query.driver, query.to, query.since, query.page) == (
        None,
        None,
        None,
        None,
        1,
    )
