"""Files on a Slack message: images and text downloaded, anything else noted.

Downloads use the bot token, so they go only to Slack's file hosts (`SLACK_FILE_HOSTS`),
and each is capped while it streams in, whatever size Slack declared.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Sequence

import httpx

from adapters.slack.types import SlackFile
from bot.conversation import Attachment
from bot.errors import ParleyError
from bot.media.attachments import download_cap, skip_reason
from bot.media.download import download_capped
from bot.settings import Limits


class FileFetcher:
    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        token: str,
        allowed_hosts: Collection[str],
        limits: Limits,
    ) -> None:
        self._http = http
        self._headers = {"Authorization": f"Bearer {token}"}
        self._hosts = frozenset(allowed_hosts)
        self._limits = limits

    async def fetch(self, files: Sequence[SlackFile]) -> tuple[list[Attachment], list[str]]:
        """The readable files, in order, and a note for each one left out."""
        results = await asyncio.gather(*(self._one(f) for f in files))
        attachments = [r for r in results if isinstance(r, Attachment)]
        notes = [r for r in results if isinstance(r, str)]
        return attachments, notes

    async def _one(self, file: SlackFile) -> Attachment | str:
        name = file.get("name") or file.get("title") or "a file"
        mime = file.get("mimetype", "")
        if file.get("mode") == "tombstone":
            return f"Skipped “{name}”: the file was deleted."
        reason = skip_reason(name, mime, file.get("size"), self._limits)
        if reason is not None:
            return reason
        url = file.get("url_private_download") or file.get("url_private")
        if not url:
            return f"Skipped “{name}”: Slack gave no download link (an external file?)."
        cap = download_cap(name, mime, self._limits)
        try:
            data = await download_capped(
                self._http,
                url,
                max_bytes=cap,
                headers=self._headers,
                allowed_hosts=self._hosts,
                name=name,
            )
        except ParleyError as exc:
            return exc.user_message
        return Attachment(name=name, mime=mime, data=data)
