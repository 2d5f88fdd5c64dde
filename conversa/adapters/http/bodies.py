"""Reading request bodies: bounded in size, JSON only, and errors a client can act on."""

from __future__ import annotations

import json
import sys

from starlette.requests import Request

from conversa.adapters.http.errors import ApiError

#: Python refuses to turn longer digit strings into integers (CVE-2020-10735).
MAX_JSON_DIGITS = sys.get_int_max_str_digits()


def malformed_json(reason: str) -> ApiError:
    return ApiError(400, "malformed_json", f"the body is not valid JSON: {reason}")


def too_large(limit: int) -> ApiError:
    return ApiError(413, "payload_too_large", f"the request body is larger than {limit} bytes")


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refused with 413 as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large(limit)
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise too_large(limit)
    return bytes(body)


async def read_json_object(request: Request, limit: int) -> dict[str, object]:
    media_type = request.headers.get("content-type", "application/json").split(";")[0].strip()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise ApiError(415, "unsupported_media_type", "send the body as application/json")
    raw = await read_body(request, limit)
    try:
        document = json.loads(raw)
    except RecursionError:
        raise malformed_json("it is nested too deeply") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise malformed_json(str(error)) from None
    except ValueError:  # what is left: an integer past Python's int-string limit
        raise malformed_json(f"a number has more than {MAX_JSON_DIGITS} digits") from None
    if not isinstance(document, dict):
        raise ApiError(400, "malformed_json", "the body must be a JSON object")
    return document
