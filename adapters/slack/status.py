"""The "thinking…" indicator while an answer is being prepared.

Slack's assistant status (`assistant.threads.setStatus`, shown under the thread's last
message) is the preferred form; Slack drops it after two minutes without a message, so
it is sent again before then while the model is still reasoning. Where Slack refuses it
(an old app without the scope, a DM without threads), a reaction on the question stands
in. Either is always removed at the end.

Most answers start within a second, and a status shown for a moment costs two Web API
calls (set and clear) and tells the person nothing the first words don't: so the plain
"thinking" status waits `STATUS_GRACE` first and is never sent when text or a tool step
shows before then. A reasoning model's silence outlasts the grace and still gets it; an
explicit status (a reasoning summary, a tool step) is shown at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from enum import Enum

from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.calls import slack_call

log = logging.getLogger(__name__)

STATUS_REFRESH = 90.0  # seconds; Slack clears a status after 120 s
# Seconds before "thinking" shows: longer than a fast model's first token (about 0.2-0.5 s
# through the engine) so a quick answer sends no status at all, short enough that a slow
# one is seen to be worked on well before a person wonders.
STATUS_GRACE = 0.8
THINKING = "is thinking…"
LOADING_MESSAGES = ["Thinking…", "Reading the conversation…", "Working on an answer…"]
REACTION = "hourglass_flowing_sand"
MAX_STATUS = 200


class _Mode(Enum):
    NONE = "none"
    STATUS = "status"
    REACTION = "reaction"


class ThinkingIndicator:
    def __init__(
        self,
        client: AsyncWebClient,
        *,
        channel: str,
        thread_ts: str | None,
        question_ts: str,
        refresh: float = STATUS_REFRESH,
        grace: float | None = None,
    ) -> None:
        self._client = client
        self._channel = channel
        self._thread_ts = thread_ts
        self._question_ts = question_ts
        self._refresh = refresh
        self._mode = _Mode.NONE
        self._status = THINKING
        self._refresher: asyncio.Task[None] | None = None
        self._grace = STATUS_GRACE if grace is None else grace
        self._delayed: asyncio.Task[None] | None = None  # "thinking", once the grace is over
        self._waiting = False  # the delayed show is still in its grace (safe to cancel)

    async def show(self, status: str | None = None) -> None:
        """Show that the bot is working; `status` replaces the rotating loading messages.

        Without a `status`, nothing is sent before the grace is over (see the module)."""
        if status is None and self._mode is _Mode.NONE and self._grace > 0:
            if self._delayed is None:
                self._waiting = True
                self._delayed = asyncio.create_task(self._show_after_grace())
            return
        await self._settle_delayed()
        await self._show(status)

    async def _show_after_grace(self) -> None:
        await asyncio.sleep(self._grace)
        self._waiting = False
        await self._show(None)

    async def _settle_delayed(self) -> None:
        """Call off the delayed "thinking" still in its grace, or let one being sent end."""
        delayed, self._delayed = self._delayed, None
        if delayed is None:
            return
        if self._waiting:
            delayed.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await delayed

    async def _show(self, status: str | None) -> None:
        if status is not None:
            self._status = status[:MAX_STATUS]
        if self._mode is _Mode.NONE:
            self._mode = _Mode.STATUS if await self._set_status() else _Mode.REACTION
            if self._mode is _Mode.REACTION:
                await slack_call(
                    self._client.reactions_add,
                    channel=self._channel,
                    timestamp=self._question_ts,
                    name=REACTION,
                    ok_errors=("already_reacted",),
                )
        elif self._mode is _Mode.STATUS and status is not None:
            await self._set_status()
        if self._mode is _Mode.STATUS and self._refresher is None:
            self._refresher = asyncio.create_task(self._keep_alive())

    async def quiet(self) -> None:
        """The answer is visible now; it is progress enough, so stop re-sending the status."""
        await self._settle_delayed()
        await self._stop_refresher()

    async def clear(self) -> None:
        await self._settle_delayed()
        await self._stop_refresher()
        if self._mode is _Mode.STATUS:
            await slack_call(
                self._client.assistant_threads_setStatus,
                channel_id=self._channel,
                thread_ts=self._thread_ts,
                status="",
            )
        elif self._mode is _Mode.REACTION:
            await slack_call(
                self._client.reactions_remove,
                channel=self._channel,
                timestamp=self._question_ts,
                name=REACTION,
                ok_errors=("no_reaction",),
            )
        self._mode = _Mode.NONE

    async def _set_status(self) -> bool:
        if self._thread_ts is None:
            return False
        loading = LOADING_MESSAGES if self._status == THINKING else None
        response = await slack_call(
            self._client.assistant_threads_setStatus,
            channel_id=self._channel,
            thread_ts=self._thread_ts,
            status=self._status,
            loading_messages=loading,
            quiet=True,
        )
        return response.ok

    async def _keep_alive(self) -> None:
        while True:
            await asyncio.sleep(self._refresh)
            await self._set_status()

    async def _stop_refresher(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
            self._refresher = None
