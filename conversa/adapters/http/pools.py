"""The server's thread pools: the use cases are synchronous, so each request runs its use
case on a worker thread, and a send holds its thread for the whole provider call.

- The provider pool runs sends, which wait on a provider for up to its timeouts (about
  28 s at worst: connect, write, read and the wait for a pooled connection). At most
  ``CONVERSA_SEND_CONCURRENCY`` sends wait on providers at once; more wait their turn
  without holding a thread. The provider HTTP client has a connection for each of them
  (see ``bootstrap.provider_http_client``), so no send times out waiting for one.
- The default pool (anyio's) runs everything else: token lookups, webhooks, reads, SSE
  polls, health and metrics. No send can take one of its threads, so they answer while
  every send waits on a slow provider.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import anyio
import anyio.to_thread

#: Threads of the default pool; more requests than this wait their turn instead of piling
#: onto the database pool.
THREAD_POOL_SIZE = 32

P = ParamSpec("P")
T = TypeVar("T")


def size_default_pool() -> None:
    anyio.to_thread.current_default_thread_limiter().total_tokens = THREAD_POOL_SIZE


class ProviderPool:
    """Threads for provider-bound work (sends), apart from the default pool."""

    def __init__(self, size: int) -> None:
        self.limiter = anyio.CapacityLimiter(size)

    async def run(self, func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        # anyio copies the caller's context into the thread: the request id goes along.
        return await anyio.to_thread.run_sync(
            functools.partial(func, *args, **kwargs), limiter=self.limiter
        )
