"""Writing an answer into Discord: streamed by editing, split at 2,000 characters.

`AnswerSink` is the engine's `ReplySink`. It renders the whole answer so far into a
chain of messages (`split_message` keeps code blocks intact across them), editing only
the messages whose text changed and no message more than about once a second; the
final render always goes through. Where the messages go is an `Outlet`: a channel by
the bot token, or an interaction's original response and followups by its token.

Everything is sent with no allowed mentions, so model output can never ping anyone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol, TypeVar

import aiohttp
import discord

from adapters.discord.types import ReplyChannel
from bot.chunking import split_message
from bot.sink import FinalReply

log = logging.getLogger(__name__)

MESSAGE_LIMIT = 2000
NO_PINGS = discord.AllowedMentions.none()
EMPTY_ANSWER = "*(The model returned an empty answer.)*"
TOKEN_LIFETIME = timedelta(minutes=15)
TOKEN_MARGIN = timedelta(seconds=60)  # switch to the bot token before an edit can fail
WEBHOOK_GONE_CODES = frozenset({50027, 10015})  # invalid webhook token, unknown webhook

T = TypeVar("T")

# What a Discord call can fail with once discord.py has done its own retries.
FAILURES = (discord.HTTPException, aiohttp.ClientError, OSError, asyncio.TimeoutError)


class Outlet(Protocol):
    """Where an answer's messages are created, edited and removed."""

    async def post(self, content: str) -> int:
        """Send a new message; its id."""

    async def edit(self, message_id: int, content: str) -> None: ...

    async def remove(self, message_id: int) -> None: ...


class ChannelOutlet:
    """Messages in a channel, thread or DM, by the bot token."""

    def __init__(self, channel: ReplyChannel) -> None:
        self.channel = channel

    async def post(self, content: str) -> int:
        message = await self.channel.send(content, allowed_mentions=NO_PINGS)
        return message.id

    async def edit(self, message_id: int, content: str) -> None:
        message = self.channel.get_partial_message(message_id)
        await message.edit(content=content, allowed_mentions=NO_PINGS)

    async def remove(self, message_id: int) -> None:
        await self.channel.get_partial_message(message_id).delete()


class InteractionOutlet:
    """An interaction's original response and followups.

    They go through the interaction's webhook while its token lives (15 minutes), then
    through the bot token as plain channel messages, so a long answer still finishes.
    Once the conversation has a thread (`thread`), further messages go there.
    """

    def __init__(self, interaction: discord.Interaction, original_id: int) -> None:
        self._interaction = interaction
        self.original_id = original_id
        self.thread: ChannelOutlet | None = None
        self._expires = interaction.created_at + TOKEN_LIFETIME - TOKEN_MARGIN
        self._token_gone = False
        self._in_thread: set[int] = set()
        channel_id = interaction.channel_id or 0
        self._by_bot = ChannelOutlet(
            interaction.client.get_partial_messageable(channel_id, guild_id=interaction.guild_id)
        )

    def _token_alive(self) -> bool:
        return not self._token_gone and discord.utils.utcnow() < self._expires

    async def _by_token(self, call: Callable[[], Awaitable[T]]) -> tuple[bool, T | None]:
        """Run a webhook call while the token lives; (False, None) once it no longer does."""
        if not self._token_alive():
            return False, None
        try:
            return True, await call()
        except discord.HTTPException as exc:
            if exc.status != 401 and exc.code not in WEBHOOK_GONE_CODES:
                raise
            log.info("interaction token expired; continuing with the bot token")
            self._token_gone = True
            return False, None

    async def post(self, content: str) -> int:
        if self.thread is not None:
            message_id = await self.thread.post(content)
            self._in_thread.add(message_id)
            return message_id
        followup = self._interaction.followup
        done, message = await self._by_token(
            lambda: followup.send(content, wait=True, allowed_mentions=NO_PINGS)
        )
        if done and message is not None:
            return message.id
        return await self._by_bot.post(content)

    async def edit(self, message_id: int, content: str) -> None:
        if self.thread is not None and message_id in self._in_thread:
            await self.thread.edit(message_id, content)
            return
        interaction = self._interaction
        if message_id == self.original_id:
            done, _ = await self._by_token(
                lambda: interaction.edit_original_response(
                    content=content, allowed_mentions=NO_PINGS
                )
            )
        else:
            done, _ = await self._by_token(
                lambda: interaction.followup.edit_message(
                    message_id, content=content, allowed_mentions=NO_PINGS
                )
            )
        if not done:
            await self._by_bot.edit(message_id, content)

    async def remove(self, message_id: int) -> None:
        if self.thread is not None and message_id in self._in_thread:
            await self.thread.remove(message_id)
            return
        followup = self._interaction.followup
        done, _ = await self._by_token(lambda: followup.delete_message(message_id))
        if not done:
            await self._by_bot.remove(message_id)


@dataclass
class _Shown:
    id: int
    content: str
    edited_at: float = float("-inf")


def final_text(reply: FinalReply) -> str:
    """The answer and, under it, the notes in Discord's small subtext."""
    parts = [reply.text] if reply.text.strip() else []
    if reply.notes:
        parts.append("\n".join(f"-# {note}" for note in reply.notes))
    return "\n\n".join(parts) or EMPTY_ANSWER


class AnswerSink:
    """A `ReplySink` that streams into Discord messages through an `Outlet`."""

    min_update_interval = 1.0

    def __init__(
        self,
        outlet: Outlet,
        *,
        typing: ReplyChannel | None = None,
        first_message: int | None = None,
    ) -> None:
        self._outlet = outlet
        self._typing_channel = typing
        self._typing: asyncio.Task[None] | None = None
        self._texted = asyncio.Event()
        self._shown: list[_Shown] = [] if first_message is None else [_Shown(first_message, "")]
        self._text = ""  # the answer so far, without any status
        self._rendering = asyncio.Lock()
        self.done = False  # finish() or fail() has run: the reply is complete

    async def start(self) -> None:
        if self._typing_channel is not None and self._typing is None:
            self._typing = asyncio.create_task(self._keep_typing(self._typing_channel))

    async def progress(self, status: str) -> None:
        if not self._text and not self.done:
            await self._show(f"-# {status}", final=False)

    async def update(self, text: str) -> None:
        if not text.strip() or self.done:
            return
        self._text = text
        await self._stop_typing()
        await self._show(text, final=False)

    async def finish(self, reply: FinalReply) -> None:
        await self._complete(final_text(reply))

    async def fail(self, message: str) -> None:
        warning = f"⚠️ {message}"
        await self._complete(f"{self._text}\n\n{warning}" if self._text.strip() else warning)

    async def _complete(self, text: str) -> None:
        self.done = True
        await self._stop_typing()
        await self._show(text, final=True)

    async def _keep_typing(self, channel: ReplyChannel) -> None:
        try:
            async with channel.typing():
                await self._texted.wait()
        except FAILURES as exc:
            log.warning("typing indicator failed: %s", exc)

    async def _stop_typing(self) -> None:
        self._texted.set()
        if self._typing is not None:
            await self._typing

    async def _show(self, text: str, *, final: bool) -> None:
        """Render in order, one at a time, and never half-way.

        A caller cancelled mid-render (the engine stops its updater that way) must not
        leave a message posted but unrecorded: the render runs on, shielded, and the
        next one waits for it.
        """
        await asyncio.shield(asyncio.ensure_future(self._render_in_turn(text, final)))

    async def _render_in_turn(self, text: str, final: bool) -> None:
        async with self._rendering:
            if final or not self.done:
                await self._render(text, final=final)

    async def _render(self, text: str, *, final: bool) -> None:
        """Show `text` across the message chain; only a final render may edit at once."""
        chunks = split_message(text, MESSAGE_LIMIT)
        now = asyncio.get_running_loop().time()
        for index, chunk in enumerate(chunks):
            if index >= len(self._shown):
                posted = await self._post(chunk, now)
                if posted is None:
                    return  # later chunks would land out of order; the next render retries
                self._shown.append(posted)
                continue
            shown = self._shown[index]
            if shown.content == chunk:
                continue
            if not final and now - shown.edited_at < self.min_update_interval:
                continue
            if await self._edit(shown, chunk, now) or not final or index < len(self._shown) - 1:
                continue
            # The last message would keep a partial text: its final text goes in a new one.
            posted = await self._post(chunk, now)
            if posted is None:
                return
            self._shown[index] = posted
        if final:
            for extra in self._shown[len(chunks) :]:
                await self._remove(extra)
            del self._shown[len(chunks) :]

    async def _post(self, chunk: str, now: float) -> _Shown | None:
        try:
            message_id = await self._outlet.post(chunk)
        except FAILURES as exc:
            log.warning("discord send failed: %s", exc)
            return None
        return _Shown(message_id, chunk, now)

    async def _edit(self, shown: _Shown, chunk: str, now: float) -> bool:
        try:
            await self._outlet.edit(shown.id, chunk)
        except FAILURES as exc:
            log.warning("discord edit failed: %s", exc)
            return False
        shown.content, shown.edited_at = chunk, now
        return True

    async def _remove(self, shown: _Shown) -> None:
        try:
            await self._outlet.remove(shown.id)
        except FAILURES as exc:
            log.warning("discord delete failed: %s", exc)
