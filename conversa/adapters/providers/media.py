"""Inbound attachments fetched from their provider with its credentials, streamed, never
stored.

- Twilio: ``MediaUrl{n}`` with HTTP basic auth (account SID, auth token); Twilio answers
  with a redirect to short-lived storage, followed without the credentials (httpx drops
  ``Authorization`` on a redirect to another origin).
- Meta: two steps, both with the access token: ``GET {api}/{version}/{media id}`` answers
  ``{"url", "mime_type", "file_size"}``, then ``GET url`` gives the bytes.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx

from conversa.app.settings import Settings

TIMEOUT = httpx.Timeout(30.0, connect=5.0)


class MediaUnavailable(Exception):
    """The attachment cannot be fetched (no credentials, the provider refused or failed)."""


class MediaTooLarge(Exception):
    """The attachment is larger than ``CONVERSA_MEDIA_MAX_BYTES``."""


@dataclass
class MediaStream:
    content_type: str
    length: int | None
    chunks: AsyncIterator[bytes]


async def open_media(
    settings: Settings, provider: str, item: dict[str, Any], limit: int
) -> MediaStream:
    """The attachment's bytes, as the provider streams them; raises
    :class:`MediaUnavailable` or :class:`MediaTooLarge` before the first byte."""
    client = httpx.AsyncClient(timeout=TIMEOUT, follow_redirects=True)
    try:
        request = await _request(client, settings, provider, item)
        response = await client.send(request, stream=True)
    except httpx.HTTPError as error:
        await client.aclose()
        raise MediaUnavailable(
            f"the provider could not be reached ({type(error).__name__})"
        ) from None
    except BaseException:
        await client.aclose()
        raise
    if response.status_code != 200:
        await response.aclose()
        await client.aclose()
        raise MediaUnavailable(f"the provider answered {response.status_code}")
    length = _length(response.headers.get("content-length"))
    if length is not None and length > limit:
        await response.aclose()
        await client.aclose()
        raise MediaTooLarge(f"the attachment is larger than {limit} bytes")

    async def chunks() -> AsyncIterator[bytes]:
        sent = 0
        try:
            async for chunk in response.aiter_bytes():
                sent += len(chunk)
                if sent > limit:  # no length announced, or a wrong one: stop at the cap
                    raise MediaTooLarge(f"the attachment is larger than {limit} bytes")
                yield chunk
        finally:
            await response.aclose()
            await client.aclose()

    content_type = item.get("content_type") or response.headers.get(
        "content-type", "application/octet-stream"
    )
    return MediaStream(content_type, length, chunks())


async def _request(
    client: httpx.AsyncClient, settings: Settings, provider: str, item: dict[str, Any]
) -> httpx.Request:
    if provider == "twilio":
        url = item.get("url")
        if not url or settings.twilio_sid is None or settings.twilio_token is None:
            raise MediaUnavailable("Twilio credentials or the media URL are missing")
        secret = f"{settings.twilio_sid}:{settings.twilio_token.get_secret_value()}"
        basic = base64.b64encode(secret.encode()).decode("ascii")
        return client.build_request("GET", url, headers={"Authorization": f"Basic {basic}"})
    if provider == "whatsapp_cloud":
        media_id = item.get("id")
        if not media_id or settings.whatsapp_token is None:
            raise MediaUnavailable("the WhatsApp token or the media id is missing")
        headers = {"Authorization": f"Bearer {settings.whatsapp_token.get_secret_value()}"}
        base = settings.whatsapp_api_base.rstrip("/")
        try:
            found = await client.get(
                f"{base}/{settings.whatsapp_api_version}/{media_id}", headers=headers
            )
        except httpx.HTTPError as error:
            raise MediaUnavailable(
                f"the provider could not be reached ({type(error).__name__})"
            ) from None
        if found.status_code != 200:
            raise MediaUnavailable(f"the provider answered {found.status_code}")
        try:
            url = found.json()["url"]
        except (ValueError, KeyError, TypeError):
            raise MediaUnavailable("the provider's media answer has no url") from None
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise MediaUnavailable("the provider's media answer has no url")
        return client.build_request("GET", url, headers=headers)
    raise MediaUnavailable(f"{provider} attachments cannot be fetched")


def _length(raw: str | None) -> int | None:
    if raw is None or not raw.isdigit():
        return None
    return int(raw)
