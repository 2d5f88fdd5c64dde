"""The benchmark's COPY seeder writes what ``app.save`` would: the same events, in order,
woken followers included."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator

import psycopg
import pytest

from bench import seed
from conversa.adapters.persistence import PostgresBackend
from conversa.app.bootstrap import bootstrap, migrate
from conversa.app.projection import MessageQuery
from conversa.app.service import ConversaService
from conversa.domain.status import Status
from tests.support import make_settings

pytestmark = pytest.mark.postgres


@pytest.fixture
def service(postgres_url: str) -> Iterator[ConversaService]:
    settings = make_settings(postgres_url)
    migrate(settings)
    with bootstrap(settings) as built:
        yield built


def copier(service: ConversaService, url: str) -> seed.EventCopier:
    backend = PostgresBackend(url)
    return seed.EventCopier(service.app, backend.conninfo(), schema=backend.schema)


def test_every_copied_event_is_the_event_the_commands_record(
    service: ConversaService, postgres_url: str
) -> None:
    specs = [*seed.log_messages(60), *seed.twilio_messages(20)]
    written = copier(service, postgres_url).copy(specs)

    assert written == sum(spec.events for spec in specs)
    for spec in specs:
        want = seed.domain_events(spec)
        got = list(service.app.events.get(spec.id))
        if spec.indexed:
            got += list(service.app.events.get(want[-1].originator_id))
        assert got == want, spec


def test_the_templates_are_used_and_checked(service: ConversaService) -> None:
    templates = seed.Templates(service.app)
    spec = next(seed.log_messages(1))
    rows = templates.rows(spec)

    assert rows is not None  # the fast path, not the slow fallback
    broken = [(rows[0][0], rows[0][1], rows[0][2], rows[0][3].replace(b"+1202", b"+1303"))]
    with pytest.raises(AssertionError, match="do not decode as the real ones"):
        seed.EventCopier(service.app, "").verify(spec, broken + rows[1:])


def test_the_projection_sees_copied_messages_as_it_sees_saved_ones(
    service: ConversaService, postgres_url: str
) -> None:
    service.send("sms", "+12025550100", {"body": "saved the usual way"})
    specs = list(seed.log_messages(40))
    signal = service.backend.event_signal()
    try:
        copier(service, postgres_url).copy(specs)
        started = time.monotonic()
        signal.wait(5)  # the COPY's NOTIFY wakes a live follower
        assert time.monotonic() - started < 4
    finally:
        signal.close()

    assert service.projector().catch_up() == 2 + sum(spec.events for spec in specs)
    statuses = Counter(spec.outcome.value for spec in specs)
    statuses["sent"] += 1  # the message sent the usual way
    for status, count in statuses.items():
        assert service.view.query(MessageQuery(status=status)).total == count
    whatsapp = sum(spec.channel == "whatsapp" for spec in specs)
    assert service.view.query(MessageQuery(channel="whatsapp")).total == whatsapp
    row = service.view.get(specs[3].id)
    assert row is not None and row.to == specs[3].to and row.body == specs[3].body


def test_a_report_for_a_copied_twilio_message_is_applied(
    service: ConversaService, postgres_url: str
) -> None:
    from conversa.app.reports import ReportOutcome, StatusReport

    (spec,) = seed.twilio_messages(1)
    copier(service, postgres_url).copy([spec])
    report = StatusReport(
        provider="twilio",
        provider_message_id=spec.provider_message_id,
        message_id=spec.id,
        status=Status.DELIVERED,
        raw_status="delivered",
    )

    assert service.record_report(report) is ReportOutcome.APPLIED
    assert service.get_message(spec.id).status == "delivered"


def test_copied_notification_ids_follow_the_existing_ones(
    service: ConversaService, postgres_url: str
) -> None:
    service.send("sms", "+12025550100", {"body": "first"})
    copier(service, postgres_url).copy(seed.log_messages(5))
    backend = PostgresBackend(postgres_url)
    with psycopg.connect(backend.conninfo()) as conn:
        conn.execute(f"SET search_path TO {backend.schema}")
        ids = [r[0] for r in conn.execute("SELECT notification_id FROM conversa_events ORDER BY 1")]
    assert ids == list(range(ids[0], ids[0] + len(ids)))
