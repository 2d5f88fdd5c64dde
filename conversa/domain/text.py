"""Text that can be stored.

JSON can carry, as ``\\u`` escapes, two kinds of character that no store of this service
takes: NUL (PostgreSQL's ``text`` and ``jsonb`` refuse it) and an unpaired UTF-16
surrogate (``\\ud800`` alone), which has no UTF-8 form at all. Either would fail a write,
or the projection of a message already recorded, so input holding one is refused.
A surrogate *pair* (``\\ud83d\\ude00``) is decoded as one character and is welcome.
"""

from __future__ import annotations

import re

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
#: The end of an error message about such text.
UNSTORABLE = "must not contain the NUL character or unpaired surrogates"


def is_storable(text: str) -> bool:
    return _UNSTORABLE.search(text) is None
