"""The Starlette application: built around one ConversaService per process."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import AsyncIterator, Callable

import anyio.to_thread
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from conversa.adapters import logs
from conversa.adapters.http.auth import Authenticator, RateLimiter
from conversa.adapters.http.errors import EXCEPTION_HANDLERS
from conversa.adapters.http.events import stream_events
from conversa.adapters.http.health import HealthCheck, health
from conversa.adapters.http.messages import list_messages, send_message, show_message
from conversa.adapters.http.metrics import Metrics, metrics
from conversa.adapters.http.middleware import RequestIdMiddleware
from conversa.adapters.http.openapi import openapi_document
from conversa.adapters.http.state import HttpState
from conversa.adapters.http.webhooks import webhook_callback, webhook_handshake
from conversa.app.service import ConversaService
from conversa.app.worker import Worker

log = logging.getLogger(__name__)

#: Set by ``conversa serve --no-worker`` for the server processes it starts.
RUN_WORKER_VARIABLE = "CONVERSA_SERVE_WORKER"
#: Threads that run the (synchronous) use cases; more requests than this wait their turn
#: instead of piling onto the database pool.
THREAD_POOL_SIZE = 32


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
        anyio.to_thread.current_default_thread_limiter().total_tokens = THREAD_POOL_SIZE
        service = await run_in_threadpool(factory)
        settings = service.settings
        logs.configure(settings.log_level)
        app.state.health = HealthCheck(service.backend.health_probe())
        app.state.conversa = HttpState(
            service=service,
            authenticator=Authenticator(service.tokens),
            rate_limiter=RateLimiter(settings.rate_limit, settings.rate_limit_storage),
            metrics=Metrics(service),
        )
        stop = threading.Event()
        thread = Worker(service).start(stop) if run_worker else None
        try:
            yield
        finally:
            # Requests in flight have finished when the server calls this; the worker
            # stops at its next safe point (between batches), then the pools close.
            stop.set()
            if thread is not None:
                await run_in_threadpool(thread.join, 10)
            app.state.health.close()
            service.close()

    return Starlette(
        routes=[
            Route("/conversa/messages", send_message, methods=["POST"]),
            Route("/conversa/messages", list_messages, methods=["GET"]),
            Route("/conversa/messages/{message_id}", show_message, methods=["GET"]),
            Route("/conversa/events", stream_events, methods=["GET"]),
            Route("/conversa/webhooks/{provider}", webhook_handshake, methods=["GET"]),
            Route("/conversa/webhooks/{provider}", webhook_callback, methods=["POST"]),
            Route("/conversa/health", health, methods=["GET"]),
            Route("/conversa/openapi.json", openapi, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
        ],
        middleware=[Middleware(RequestIdMiddleware)],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )


async def openapi(_request: Request) -> JSONResponse:
    return JSONResponse(openapi_document())
