"""Writing an answer into Discord: streamed by editing, split at 2,000 characters.

`AnswerSink` is the engine's `ReplySink`: the core's `MessageChain` renders the answer
into messages, edited as it grows (the engine pushes at most once a second). Where the
messages go is an `Outlet`: a channel by the bot token, or an interaction's original
response and followups by its token.

Until the answer's text arrives, each tool call is a short line in the message being
edited (`-# 🔧 name(args) …`, then ✓ or ✗); a tool that needs approval is asked for with
persistent buttons in the channel (`adapters.discord.approval`).

Everything is sent with no allowed mentions, so model output can never ping anyone,
and with embeds suppressed (the SUPPRESS_EMBEDS flag), so no link the model invented is
fetched for a preview: only a finished message whose every link a person wrote in the
conversation is sent with its embeds. The flag is set when a message is created and
stays through edits (discord.py's edits of channel and interaction messages take none);
a `/chat` answer's original response, created by the deferral, gets it from the bot
token before its first edit.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Protocol, TypeVar

import aiohttp
import discord

from adapters.discord.approval import post_approval
from adapters.discord.buttons import feedback_view
from adapters.discord.types import ReplyChannel
from bot.errors import ToolError
from bot.metrics import Metrics
from bot.reply import Audience, MessageChain
from bot.reply.sink import FinalReply
from bot.tools.approval import ApprovalRequest
from bot.tools.base import ToolProgress

log = logging.getLogger(__name__)

MESSAGE_LIMIT = 2000
# A short answer complete within this of its first token is sent as one message, not
# sent and then edited: one call against Discord's rate limits instead of two.
FIRST_UPDATE_DELAY = 0.5
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

    async def post(self, content: str, *, embeds: bool = False) -> int:
        """Send a new message, its link embeds suppressed unless `embeds`; its id."""

    async def edit(self, message_id: int, content: str) -> None: ...

    async def remove(self, message_id: int) -> None: ...

    async def add_view(self, message_id: int, view: discord.ui.View) -> None:
        """Put buttons under a message, leaving its text as it is."""


class ChannelOutlet:
    """Messages in a channel, thread or DM, by the bot token."""

    def __init__(self, channel: ReplyChannel) -> None:
        self.channel = channel

    async def post(self, content: str, *, embeds: bool = False) -> int:
        message = await self.channel.send(
            content, allowed_mentions=NO_PINGS, suppress_embeds=not embeds
        )
        return message.id

    async def edit(self, message_id: int, content: str) -> None:
        message = self.channel.get_partial_message(message_id)
        await message.edit(content=content, allowed_mentions=NO_PINGS)

    async def remove(self, message_id: int) -> None:
        await self.channel.get_partial_message(message_id).delete()

    async def add_view(self, message_id: int, view: discord.ui.View) -> None:
        await self.channel.get_partial_message(message_id).edit(view=view)


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
        self._original_suppressed = False
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

    async def post(self, content: str, *, embeds: bool = False) -> int:
        if self.thread is not None:
            message_id = await self.thread.post(content, embeds=embeds)
            self._in_thread.add(message_id)
            return message_id
        followup = self._interaction.followup
        done, message = await self._by_token(
            lambda: followup.send(
                content, wait=True, allowed_mentions=NO_PINGS, suppress_embeds=not embeds
            )
        )
        if done and message is not None:
            return message.id
        return await self._by_bot.post(content, embeds=embeds)

    async def edit(self, message_id: int, content: str) -> None:
        if self.thread is not None and message_id in self._in_thread:
            await self.thread.edit(message_id, content)
            return
        interaction = self._interaction
        if message_id == self.original_id:
            await self._suppress_original()
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

    async def _suppress_original(self) -> None:
        """Embeds off on the original response, once, before the answer's text reaches it.

        It was created by the deferral, which takes no flags, and discord.py edits an
        interaction's messages without flags, so the bot token sets the flag on what is
        its own message in the channel.
        """
        if self._original_suppressed:
            return
        self._original_suppressed = True
        try:
            original = await self._by_bot.channel.fetch_message(self.original_id)
            await original.edit(suppress=True)
        except FAILURES as exc:
            log.warning("could not suppress embeds of the /chat answer: %s", exc)

    async def remove(self, message_id: int) -> None:
        if self.thread is not None and message_id in self._in_thread:
            await self.thread.remove(message_id)
            return
        followup = self._interaction.followup
        done, _ = await self._by_token(lambda: followup.delete_message(message_id))
        if not done:
            await self._by_bot.remove(message_id)

    async def add_view(self, message_id: int, view: discord.ui.View) -> None:
        if self.thread is not None and message_id in self._in_thread:
            await self.thread.add_view(message_id, view)
            return
        interaction = self._interaction
        if message_id == self.original_id:
            done, _ = await self._by_token(lambda: interaction.edit_original_response(view=view))
        else:
            done, _ = await self._by_token(
                lambda: interaction.followup.edit_message(message_id, view=view)
            )
        if not done:
            await self._by_bot.add_view(message_id, view)


class _Reported:
    """An `Outlet` for the `MessageChain`: Discord's failures logged and reported as values."""

    limit = MESSAGE_LIMIT

    def __init__(self, outlet: Outlet, metrics: Metrics) -> None:
        self.outlet = outlet
        self._metrics = metrics
        self.audience = Audience()

    async def post(self, text: str, *, final: bool) -> int | None:
        # A message that may still grow can't know its links yet: no embeds then.
        embeds = final and self.audience.previews(text)
        if final:
            self.audience.count_invented_links(self._metrics, text)
        try:
            return await self.outlet.post(text, embeds=embeds)
        except FAILURES as exc:
            log.warning("discord send failed: %s", exc)
            return None

    async def edit(self, message: int, before: str, text: str, *, final: bool) -> bool:
        if text == before:
            return True
        if final:
            self.audience.count_invented_links(self._metrics, text)
        try:
            await self.outlet.edit(message, text)
        except FAILURES as exc:
            log.warning("discord edit failed: %s", exc)
            return False
        return True

    async def remove(self, message: int) -> None:
        try:
            await self.outlet.remove(message)
        except FAILURES as exc:
            log.warning("discord delete failed: %s", exc)


def final_text(reply: FinalReply) -> str:
    """The answer and, under it, the notes in Discord's small subtext."""
    parts = [reply.text] if reply.text.strip() else []
    if reply.notes:
        parts.append("\n".join(f"-# {note}" for note in reply.notes))
    return "\n\n".join(parts) or EMPTY_ANSWER


def tool_line(event: ToolProgress, args: str) -> str:
    """One tool call as a line of Discord's small subtext."""
    call = f"🔧 {event.name}({args})"
    if event.state == "done":
        return f"-# {call} ✓"
    if event.state == "error":
        return f"-# {call} ✗ {event.summary}"
    if event.state == "awaiting_approval":
        return f"-# {call} waiting for approval…"
    return f"-# {call} …"


class AnswerSink:
    """A `ReplySink` that streams into Discord messages through an `Outlet`."""

    min_update_interval = 1.0
    first_update_delay = FIRST_UPDATE_DELAY

    def __init__(
        self,
        outlet: Outlet,
        *,
        metrics: Metrics,
        typing: ReplyChannel | None = None,
        first_message: int | None = None,
        ask_in: ReplyChannel | None = None,
    ) -> None:
        """`ask_in`: where approval buttons are posted (the answer's channel or thread)."""
        self._reported = _Reported(outlet, metrics)
        self._chain: MessageChain[int] = MessageChain(self._reported, first=first_message)
        self._typing_channel = typing
        self._typing: asyncio.Task[None] | None = None
        self._texted = asyncio.Event()
        self._text = ""  # the answer so far, without any status
        self._ask_in = ask_in
        self._tool_lines: dict[str, str] = {}  # by call id, in the order the calls came
        self._tool_args: dict[str, str] = {}
        self._tools_stale = False
        self._tools_shown: asyncio.Task[None] | None = None
        self.done = False  # finish() or fail() has run: the reply is complete

    async def start(self) -> None:
        if self._typing_channel is not None and self._typing is None:
            self._typing = asyncio.create_task(self._keep_typing(self._typing_channel))

    def meet(self, audience: Audience) -> None:
        self._reported.audience = audience

    async def progress(self, status: str) -> None:
        if not self._text and not self.done:
            await self._chain.render(f"-# {status}", final=False)

    async def tool_progress(self, event: ToolProgress) -> None:
        """Update the call's line; the lines are shown by one edit at a time, the latest
        state each time, so a round of quick calls is not a burst of edits."""
        args = self._tool_args.setdefault(event.call_id, event.summary)
        self._tool_lines[event.call_id] = tool_line(event, args)
        self._tools_stale = True
        if self._tools_shown is None or self._tools_shown.done():
            self._tools_shown = asyncio.create_task(self._show_tools())

    async def _show_tools(self) -> None:
        while self._tools_stale and not self._text and not self.done:
            self._tools_stale = False
            await self._chain.render("\n".join(self._tool_lines.values()), final=False)

    async def ask_approval(self, request: ApprovalRequest) -> None:
        """Post the buttons; a failure reaches the model as the tool's error."""
        if self._ask_in is None:
            raise ToolError("there is no channel to ask the person for approval in")
        await post_approval(self._ask_in, request)

    async def update(self, text: str) -> None:
        if not text.strip() or self.done:
            return
        self._text = text
        await self._stop_typing()
        await self._chain.render(text, final=False)

    async def finish(self, reply: FinalReply) -> None:
        await self._complete(final_text(reply))
        if reply.model and self._chain.messages:  # a model's answer: 👍/👎 under its end
            last = self._chain.messages[-1]
            await self._chain.run(
                self._add_buttons(last, feedback_view(reply.model, reply.persona))
            )

    async def _add_buttons(self, message_id: int, view: discord.ui.View) -> None:
        try:
            await self._reported.outlet.add_view(message_id, view)
        except FAILURES as exc:
            log.warning("could not add feedback buttons: %s", exc)

    async def fail(self, message: str) -> None:
        warning = f"⚠️ {message}"
        await self._complete(f"{self._text}\n\n{warning}" if self._text.strip() else warning)

    async def _complete(self, text: str) -> None:
        self.done = True
        await self._stop_typing()
        await self._chain.render(text, final=True)

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
