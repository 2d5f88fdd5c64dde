"""JSON answers rendered by orjson: the same compact JSON as Starlette's ``JSONResponse``
(UTF-8, no spaces), in a fraction of the time, on the hot path of every send."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import JSONResponse


class JsonResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        try:
            return orjson.dumps(content)
        except orjson.JSONEncodeError:
            # What orjson does not take (an integer past 64 bits in a message's meta, say)
            # is rendered, or refused, exactly as Starlette would.
            return super().render(content)
