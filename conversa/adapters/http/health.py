"""``GET /conversa/health``: readiness, answered within a second whatever the database does.

The check runs on a connection of its own in a thread of its own (so neither a busy pool
nor a busy request thread pool delays it), at most once a second per process however
many probes arrive (the endpoint is public: load on it must not become load on the
database), and the answer never waits for more than :attr:`HealthCheck.WAIT` seconds.
An "ok" is not reused once the server has ended the check's session (a shutdown does),
so a stopped database shows at once rather than a second later.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import JSONResponse

from conversa.app.outage import DatabaseUnavailable
from conversa.app.ports import HealthProbe

log = logging.getLogger(__name__)

UNREACHABLE = "database unreachable"
FAILING = "database error"


class HealthCheck:
    #: Seconds an answer is reused for.
    TTL = 1.0
    #: Seconds a probe waits for the database before saying it did not answer.
    WAIT = 0.8

    def __init__(self, probe: HealthProbe, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._probe = probe
        self._clock = clock
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="conversa-health"
        )
        self._running: concurrent.futures.Future[str | None] | None = None
        self._started_at = -float("inf")
        self._answer: str | None = None
        self.checks = 0  # how many times the database was asked

    async def problem(self) -> str | None:
        """None while the database answers, else why not (in words safe to publish)."""
        running = self._running
        if running is None or self._stale(running):
            running = self._running = self._executor.submit(self._check)
            self._started_at = self._clock()
        try:
            answer = await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(running)), self.WAIT)
        except TimeoutError:
            # The check goes on in its thread; the next probes wait for the same one.
            answer = f"the database did not answer within {self.WAIT:g} s"
        self._remember(answer)
        return answer

    def _stale(self, running: concurrent.futures.Future[str | None]) -> bool:
        """Whether a finished check is too old to answer with. One still running is
        never replaced: one check at a time, however long it takes."""
        if not running.done():
            return False
        if self._clock() - self._started_at >= self.TTL:
            return True
        # "ok" is out of date at once if the server has ended the check's session.
        return running.result() is None and self._probe.interrupted()

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._probe.close()

    def _check(self) -> str | None:
        self.checks += 1
        try:
            self._probe.check()
        except DatabaseUnavailable as error:
            return self._failed(UNREACHABLE, error)
        except Exception as error:  # any failure means "not ready"
            return self._failed(FAILING, error)
        return None

    def _failed(self, reason: str, error: Exception) -> str:
        if self._answer is None:
            detail = str(error).strip().splitlines()[:1] or [type(error).__name__]
            log.warning("health check: %s (%s)", reason, detail[0])
        return reason

    def _remember(self, answer: str | None) -> None:
        if answer is None and self._answer is not None:
            log.info("health check: the database answers again")
        self._answer = answer


async def health(request: Request) -> JSONResponse:
    check: HealthCheck = request.app.state.health
    problem = await check.problem()
    if problem is not None:
        return JSONResponse({"status": "unavailable", "reason": problem}, status_code=503)
    return JSONResponse({"status": "ok"})
