"""The Overview page: the last 24 hours as an inline SVG chart, each driver's delivery
rate and median time to delivered, failure reasons, projection lag, dead letters (each
with a replay button), breakers and ``diagnose``'s findings."""

from __future__ import annotations

import functools
import logging

from markupsafe import Markup
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from conversa.adapters.charts import hourly_activity_chart
from conversa.adapters.console.state import PREFIX
from conversa.adapters.console.web import Operator, render, service_of, signed_in
from conversa.app.dead_letters import Replayed, replay_dead_letter
from conversa.app.overview import CachedFindings
from conversa.app.overview import overview as overview_of

log = logging.getLogger(__name__)
#: ``diagnose``'s findings, refreshed in the background every 30 s (one reads the store's
#: parking events: too slow to run on every view).
FINDINGS = CachedFindings()

NOTICES = {
    Replayed.DELIVERED.value: "Dead letter {id} was delivered to its subscriber and removed.",
    Replayed.FAILED_AGAIN.value: "The subscriber failed again: dead letter {id} is kept.",
    Replayed.NOT_FOUND.value: "There is no dead letter {id} (replayed already?).",
    Replayed.NOT_REPLAYABLE.value: (
        "Dead letter {id} cannot be replayed here: its subscriber is not configured in this "
        "process, or its event is gone."
    ),
}


@signed_in
async def overview(request: Request, operator: Operator) -> Response:
    seen = await run_in_threadpool(
        functools.partial(overview_of, service_of(request), findings=FINDINGS)
    )
    notice = None
    replayed = request.query_params.get("replayed", "")
    letter = request.query_params.get("letter", "")
    if replayed in NOTICES and letter.isdigit():
        notice = NOTICES[replayed].format(id=int(letter))
    return render(
        request,
        operator,
        "overview.html",
        {
            "overview": seen,
            "totals": seen.totals,
            # The chart escapes every text it draws (conversa.adapters.charts).
            "chart": Markup(hourly_activity_chart(seen.hours)),
            "notice": notice,
            "notice_ok": replayed == Replayed.DELIVERED.value,
        },
    )


@signed_in
async def replay(request: Request, operator: Operator) -> Response:
    raw = request.path_params["letter"]
    if not raw.isdigit():
        return RedirectResponse(f"{PREFIX}/overview", status_code=303)
    letter = int(raw)
    outcome = await run_in_threadpool(replay_dead_letter, service_of(request), letter)
    log.info(
        "console dead-letter replay token=%s dead_letter=%d result=%s",
        operator.token_name,
        letter,
        outcome.result.value,
    )
    return RedirectResponse(
        f"{PREFIX}/overview?replayed={outcome.result.value}&letter={letter}#dead-letters",
        status_code=303,
    )


ROUTES = [
    Route("/overview", overview, methods=["GET"]),
    Route("/overview/dead-letters/{letter}/replay", replay, methods=["POST"]),
]
