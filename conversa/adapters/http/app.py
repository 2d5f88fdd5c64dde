"""The Starlette application: built around one ConversaService per process."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import AsyncIterator, Callable

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from conversa.app.service import ConversaService
from conversa.app.worker import Worker

log = logging.getLogger(__name__)

#: Set by ``conversa serve --no-worker`` for the server processes it starts.
RUN_WORKER_VARIABLE = "CONVERSA_SERVE_WORKER"


def create_app(
    service_factory: Callable[[], ConversaService] | None = None,
    *,
    run_worker: bool | None = None,
) -> Starlette:
    """The ASGI application. Without arguments (as uvicorn's factory), the service is
    built from the environment when the server starts, and the worker loop runs inside
    the process unless ``CONVERSA_SERVE_WORKER`` is ``false``."""
    factory = service_factory or ConversaService.from_env
    if run_worker is None:
        run_worker = os.environ.get(RUN_WORKER_VARIABLE, "true").lower() not in ("0", "false", "no")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        service = await run_in_threadpool(factory)
        app.state.service = service
        stop = threading.Event()
        thread = Worker(service).start(stop) if run_worker else None
        try:
            yield
        finally:
            stop.set()
            if thread is not None:
                await run_in_threadpool(thread.join, 10)
            service.close()

    return Starlette(
        routes=[Route("/conversa/health", health, methods=["GET"])],
        lifespan=lifespan,
    )


async def health(request: Request) -> JSONResponse:
    service: ConversaService = request.app.state.service
    try:
        await run_in_threadpool(service.app.recorder.max_notification_id)
    except Exception:
        log.warning("health check: the database does not answer", exc_info=True)
        return JSONResponse({"status": "unavailable"}, status_code=503)
    return JSONResponse({"status": "ok"})
