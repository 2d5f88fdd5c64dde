"""``/conversa/health``: answered within a second, and asking the database at most once a
second however many probes come (the endpoint is public)."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from conversa.adapters.http.app import create_app
from conversa.adapters.http.health import HealthCheck
from conversa.adapters.persistence import PostgresBackend
from conversa.app.service import ConversaService
from tests.pgcluster import free_port


def test_a_burst_of_probes_asks_the_database_once_a_second(
    service: ConversaService, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "close", lambda: None)  # the fixture closes it
    app = create_app(lambda: service, run_worker=False)

    async def bursts() -> tuple[list[int], int, float]:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://conversa"
            ) as client,
        ):
            statuses = []
            began = time.monotonic()
            for _ in range(2):
                responses = await asyncio.gather(
                    *(client.get("/conversa/health") for _ in range(200))
                )
                statuses += [r.status_code for r in responses]
                await asyncio.sleep(1.1)
            health: HealthCheck = app.state.health
            return statuses, health.checks, time.monotonic() - began

    statuses, checks, seconds = asyncio.run(bursts())

    assert statuses == [200] * 400
    # One check, then one more for the second burst, and no more than one a second
    # (a busy machine may stretch a burst over a second).
    assert 2 <= checks <= int(seconds / HealthCheck.TTL) + 1, (checks, seconds)


@pytest.mark.parametrize("host", ["127.0.0.1", "10.255.255.1"])
def test_an_unreachable_database_is_reported_within_a_second(host: str) -> None:
    # A closed port refuses at once; an address nobody answers (or a network that is not
    # there) must not hold the answer either.
    port = free_port() if host == "127.0.0.1" else 5432
    check = HealthCheck(PostgresBackend(f"postgresql://postgres@{host}:{port}/x").health_probe())
    try:
        began = time.monotonic()
        problem = asyncio.run(check.problem())
        elapsed = time.monotonic() - began
    finally:
        check.close()

    assert problem in ("database unreachable", "the database did not answer within 0.8 s")
    assert elapsed < 1.0
