"""Downloading a message's attachments the moment it arrives (signed CDN URLs expire)."""

from __future__ import annotations

import asyncio
import mimetypes
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

import discord
import httpx

from bot.conversation import Attachment
from bot.errors import ParleyError
from bot.media.attachments import download_cap, skip_reason
from bot.media.download import download_capped
from bot.settings import Limits


@dataclass
class Fetched:
    files: list[Attachment] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what was skipped, for the user


class AttachmentFetcher:
    def __init__(
        self, http: httpx.AsyncClient, limits: Limits, allowed_hosts: Collection[str]
    ) -> None:
        self._http = http
        self._limits = limits
        self._hosts = allowed_hosts

    async def fetch(self, attachments: Sequence[discord.Attachment]) -> Fetched:
        """Readable attachments' bytes, in order; a note for each one skipped or failed."""
        result = Fetched()
        wanted: list[tuple[discord.Attachment, str]] = []
        for item in attachments:
            mime = item.content_type or mimetypes.guess_type(item.filename)[0] or ""
            reason = skip_reason(item.filename, mime, item.size, self._limits)
            if reason is None:
                wanted.append((item, mime))
            else:
                result.notes.append(reason)
        got = await asyncio.gather(
            *(self._download(item, mime) for item, mime in wanted), return_exceptions=True
        )
        for (item, mime), data in zip(wanted, got, strict=True):
            if isinstance(data, bytes):
                name = item.filename
                result.files.append(Attachment(name, mime or "application/octet-stream", data))
            elif isinstance(data, ParleyError):
                result.notes.append(data.user_message)
            else:
                raise data
        return result

    async def _download(self, item: discord.Attachment, mime: str) -> bytes:
        # The declared size was checked against the cap for its kind already; the same cap
        # guards against a body larger than declared (a document may be 25 MB, an image 10).
        return await download_capped(
            self._http,
            item.url,
            max_bytes=download_cap(item.filename, mime, self._limits),
            allowed_hosts=self._hosts,
            name=item.filename,
        )
