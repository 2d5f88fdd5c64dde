"""The Starlette application: built around one ConversaService per process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import AsyncIterator, Callable

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from conversa.adapters import logs
from conversa.adapters.console.mount import console_routes
from conversa.adapters.http.auth import Authenticator
from conversa.adapters.http.batch import send_batch
from conversa.adapters.http.cancel import cancel_message
from conversa.adapters.http.conversations import list_conversations, show_conversation
from conversa.adapters.http.errors import EXCEPTION_HANDLERS
from conversa.adapters.http.events import server_is_stopping, stream_events
from conversa.adapters.http.health import HealthCheck, health
from conversa.adapters.http.media import message_media
from conversa.adapters.http.messages import list_messages, send_message, show_message
from conversa.adapters.http.metrics import ProjectionGauges, metrics, metrics_of
from conversa.adapters.http.middleware import RequestIdMiddleware
from conversa.adapters.http.openapi import openapi_document
from conversa.adapters.http.pools import ProviderPool, size_default_pool
from conversa.adapters.http.ratelimit import RateLimiter
from conversa.adapters.http.recipients import change_consent, show_recipient
from conversa.adapters.http.state import HttpState
from conversa.adapters.http.webhooks import webhook_callback, webhook_handshake
from conversa.adapters.metrics import mark_process_dead
from conversa.app.provider_calls import SHUTDOWN_GRACE_SECONDS
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
        size_default_pool()
        service = await run_in_threadpool(factory)
        settings = service.settings
        logs.configure(settings.log_level, settings.log_format)
        app.state.health = HealthCheck(service.backend.health_probe())
        app.state.conversa = HttpState(
            service=service,
            authenticator=Authenticator(service.tokens),
            rate_limiter=RateLimiter.from_settings(settings),
            metrics=metrics_of(service),
            database_gauges=ProjectionGauges(service),
            provider_pool=ProviderPool(settings.send_concurrency),
        )
        stop = threading.Event()
        thread = Worker(service).start(stop) if run_worker else None
        watcher = asyncio.create_task(_stop_when_server_stops(stop)) if run_worker else None
        try:
            yield
        finally:
            # Requests in flight have finished when the server calls this. The worker
            # was told to stop when the server was; it stops at its next safe point (the
            # dispatcher: once the attempt in flight has recorded its outcome, which can
            # take a whole provider call). Only then do the pools and clients close.
            stop.set()
            if watcher is not None:
                watcher.cancel()
            if thread is not None:
                await run_in_threadpool(thread.join, SHUTDOWN_GRACE_SECONDS + 5)
                if thread.is_alive():
                    log.error("the worker did not stop in time; closing the service anyway")
            await app.state.conversa.rate_limiter.aclose()
            app.state.health.close()
            service.close()
            mark_process_dead()  # its in-flight gauges go; its counters stay in the sums

    return Starlette(
        routes=[
            Route("/conversa/messages", send_message, methods=["POST"]),
            Route("/conversa/messages/batch", send_batch, methods=["POST"]),
            Route("/conversa/messages", list_messages, methods=["GET"]),
            Route("/conversa/messages/{message_id}", show_message, methods=["GET"]),
            Route("/conversa/messages/{message_id}/cancel", cancel_message, methods=["POST"]),
            Route("/conversa/conversations", list_conversations, methods=["GET"]),
            Route("/conversa/conversations/{conversation_id}", show_conversation, methods=["GET"]),
            Route("/conversa/messages/{message_id}/media/{n}", message_media, methods=["GET"]),
            Route("/conversa/recipients/{number}", show_recipient, methods=["GET"]),
            Route("/conversa/recipients/{number}/consent", change_consent, methods=["PUT"]),
            Route("/conversa/events", stream_events, methods=["GET"]),
            Route("/conversa/webhooks/{provider}", webhook_handshake, methods=["GET"]),
            Route("/conversa/webhooks/{provider}", webhook_callback, methods=["POST"]),
            Route("/conversa/health", health, methods=["GET"]),
            Route("/conversa/openapi.json", openapi, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            *console_routes(),
        ],
        middleware=[Middleware(RequestIdMiddleware)],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )


async def _stop_when_server_stops(stop: threading.Event) -> None:
    """Stop the worker as soon as the server is told to stop, not only once the requests in
    flight are done: the two waits then overlap instead of adding up."""
    while not server_is_stopping():
        await asyncio.sleep(0.2)
    stop.set()


async def openapi(_request: Request) -> JSONResponse:
    return JSONResponse(openapi_document())
