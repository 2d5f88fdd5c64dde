"""The recipients this process has seen a consent ledger for, so that a synchronous send
need not read the ledger before it saves.

Most numbers never opted in or out: their ledger has no event. A send therefore assumes
what it last saw (or, for a number it has not seen, that the ledger is empty) and saves
its message on the condition that the ledger is still at that version
(:class:`~conversa.app.unchanged.Unchanged`). The store checks the condition in the
inserting transaction, at no extra round trip. When the assumption is wrong (the number
has a ledger this process has not seen, or it changed since), the store commits nothing
(``StaleRead``) and the send decides again on a fresh read, which is kept here. So a
send costs a read only when the number's consent changed since this process last read
it, and a decision is never made on a version other than the one the commit finds.
"""

from __future__ import annotations

import threading

from cachetools import LRUCache

from conversa.domain.recipient import Recipient

#: Ledgers kept. Only numbers with a ledger take a place (an empty one is the default),
#: and one pushed out costs a single failed save and a read when it is next sent to.
MAX_KNOWN = 10_000


class KnownRecipients:
    def __init__(self, size: int = MAX_KNOWN) -> None:
        self._known: LRUCache[str, Recipient] = LRUCache(size)
        self._lock = threading.Lock()

    def get(self, number: str) -> Recipient | None:
        """The ledger last read for ``number``; None: assume it has no event."""
        with self._lock:
            return self._known.get(number)

    def remember(self, number: str, recipient: Recipient | None) -> None:
        """Keep what a fresh read found. The caller must not change ``recipient`` after."""
        with self._lock:
            if recipient is None:
                self._known.pop(number, None)
            else:
                self._known[number] = recipient

    def forget(self, number: str) -> None:
        with self._lock:
            self._known.pop(number, None)
