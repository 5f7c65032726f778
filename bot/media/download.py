"""Fetching a platform's file with a size cap enforced while it downloads.

The cap is checked against the bytes received, not only a Content-Length the server
may omit or misstate, so a 2 GB file costs at most `max_bytes` of memory.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from urllib.parse import urlsplit

import httpx

from bot.errors import UserInputError
from bot.media.attachments import human_size

log = logging.getLogger(__name__)


class DownloadError(UserInputError):
    kind = "download"


def _too_large(name: str, max_bytes: int) -> DownloadError:
    return DownloadError(f"“{name}” is larger than {human_size(max_bytes)}, so I skipped it.")


async def download_capped(
    client: httpx.AsyncClient,
    url: str,
    *,
    max_bytes: int,
    headers: Mapping[str, str] | None = None,
    allowed_hosts: Collection[str] | None = None,
    name: str = "the file",
) -> bytes:
    """The body at `url`, or a `DownloadError` whose message tells the user what failed.

    `allowed_hosts` keeps credentials (Slack's bot token) from being sent anywhere but
    the platform's own file hosts.
    """
    host = urlsplit(url).hostname or ""
    if allowed_hosts is not None and host not in allowed_hosts:
        log.warning("refused download of %s from unexpected host %s", name, host)
        raise DownloadError(f"I couldn't fetch “{name}”: it isn't hosted by the platform.")
    try:
        async with client.stream("GET", url, headers=dict(headers or {})) as response:
            if response.status_code != 200:
                log.warning("download of %s failed: HTTP %s", name, response.status_code)
                raise DownloadError(f"I couldn't download “{name}” (HTTP {response.status_code}).")
            declared = response.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise _too_large(name, max_bytes)
            chunks: list[bytes] = []
            received = 0
            async for chunk in response.aiter_bytes():
                received += len(chunk)
                if received > max_bytes:
                    raise _too_large(name, max_bytes)
                chunks.append(chunk)
            return b"".join(chunks)
    except httpx.HTTPError as exc:
        log.warning("download of %s failed: %s", name, exc)
        raise DownloadError(f"I couldn't download “{name}”. Please try again.") from exc
