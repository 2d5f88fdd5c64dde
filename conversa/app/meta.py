"""The bounds of a message's ``meta``: a JSON object, shallow and small.

``meta`` is stored in every message's first event and in the read model, and every JSON
encoder and decoder on its way (the event store's transcoder, PostgreSQL's ``jsonb``, a
client's parser) has limits of its own: deep nesting exhausts a recursive encoder, and an
integer of more than 4,300 digits cannot even be printed by Python. So the value is
checked here, once, for every caller (HTTP, command line, Python), before anything is
stored: without recursion, so that no value, however deep or cyclic, can break the check.
"""

from __future__ import annotations

import json
import math

from conversa.domain.errors import InvalidRequest
from conversa.domain.text import UNSTORABLE, is_storable

MAX_META_BYTES = 4096
#: Levels of objects and arrays, ``meta`` itself being the first.
MAX_META_DEPTH = 10
LIMITS = (
    f"meta must be a JSON object of at most {MAX_META_DEPTH} levels of nesting "
    f"and at most {MAX_META_BYTES} bytes as JSON"
)


def check_meta(meta: object) -> None:
    """Raise :class:`InvalidRequest` (field ``meta``) unless ``meta`` is an object within
    the bounds, holding only JSON values: objects with string keys, lists, strings, finite
    numbers, booleans and None."""
    if not isinstance(meta, dict):
        raise _refused("meta is not an object")
    pending: list[tuple[object, int]] = [(meta, 1)]
    values = 0
    while pending:
        value, depth = pending.pop()
        # Each value takes at least one byte of JSON: this bounds the walk, also through
        # a value shared many times over (``[x] * 1000`` at every level).
        values += 1
        if values > MAX_META_BYTES:
            raise _refused(f"meta holds more than {MAX_META_BYTES} values")
        if isinstance(value, dict | list):
            if depth > MAX_META_DEPTH:
                raise _refused(f"meta is nested more than {MAX_META_DEPTH} levels deep")
            if isinstance(value, dict):
                if not all(isinstance(key, str) for key in value):
                    raise _not_json("an object key is not a string")
                if not all(is_storable(key) for key in value):
                    raise _refused(f"an object key {UNSTORABLE}")
                pending.extend((item, depth + 1) for item in value.values())
            else:
                pending.extend((item, depth + 1) for item in value)
        elif isinstance(value, str):
            if not is_storable(value):
                raise _refused(f"a string {UNSTORABLE}")
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise _not_json("a number is not finite")
        elif not (value is None or isinstance(value, int)):  # bool is an int
            raise _not_json(f"a value of type {type(value).__name__} is not JSON")
    try:
        size = len(json.dumps(meta).encode())
    except ValueError:  # only an integer too long to print is left to fail here
        raise _refused("meta holds a number too long to print") from None
    if size > MAX_META_BYTES:
        raise _refused(f"meta is {size} bytes as JSON")


def _refused(reason: str) -> InvalidRequest:
    return InvalidRequest("meta", f"{reason}; {LIMITS}")


def _not_json(reason: str) -> InvalidRequest:
    return InvalidRequest("meta", f"meta must hold only JSON values: {reason}; {LIMITS}")
