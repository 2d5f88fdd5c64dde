"""How long one provider call may take, and what follows from it.

The provider HTTP client (built in bootstrap) uses these timeouts; the attempt lease must
outlast the worst case, or a second dispatcher could repeat an attempt still in flight;
and a process told to stop waits that long for the attempts in flight to record their
outcomes before it closes its pools.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ProviderTimeouts:
    """Seconds for each phase of a provider call. A send runs inside an API request, so a
    provider that does not answer must not hold it for long; a read timeout is reported
    as a transient ``<driver>_timeout`` and retried by the worker."""

    pool: float
    connect: float
    write: float
    read: float

    @property
    def worst_case(self) -> float:
        """The longest one call takes: waiting for a pooled connection, connecting,
        writing the request, waiting for the answer."""
        return self.pool + self.connect + self.write + self.read


PROVIDER_TIMEOUTS = ProviderTimeouts(pool=5.0, connect=3.0, write=10.0, read=10.0)
#: 28 s with the timeouts above.
WORST_CASE_PROVIDER_CALL = PROVIDER_TIMEOUTS.worst_case
#: How long a process told to stop waits for the attempts in flight (the dispatcher's, and
#: sends inside requests) to record what came of them before it closes its pools and
#: clients: a worst-case provider call, and time to save its outcome.
SHUTDOWN_GRACE_SECONDS = WORST_CASE_PROVIDER_CALL + 10.0
