"""What each process's HTTP application holds, and the gate of the application endpoints."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from conversa.adapters.http.auth import Authenticator
from conversa.adapters.http.metrics import ProjectionGauges
from conversa.adapters.http.pools import ProviderPool
from conversa.adapters.http.ratelimit import RateLimiter
from conversa.adapters.metrics import PrometheusMetrics
from conversa.app.service import ConversaService
from conversa.app.tokens import TokenInfo


@dataclass(frozen=True, slots=True)
class HttpState:
    service: ConversaService
    authenticator: Authenticator
    rate_limiter: RateLimiter
    metrics: PrometheusMetrics
    database_gauges: ProjectionGauges
    provider_pool: ProviderPool


@dataclass(frozen=True, slots=True)
class ApplicationRequest:
    service: ConversaService
    token: TokenInfo


def http_state(request: Request) -> HttpState:
    state: HttpState = request.app.state.conversa
    return state


async def application_request(request: Request) -> ApplicationRequest:
    """Authenticate the request's token (401) and count it against its rate limit (429;
    503 when the rate limit cannot be counted and the server is set to fail closed)."""
    state = http_state(request)
    token = await state.authenticator(request)
    await state.rate_limiter.hit(token)
    return ApplicationRequest(service=state.service, token=token)
