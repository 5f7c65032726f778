"""Turning a Discord message into a conversation turn, and starting its answer.

A mention in a channel is answered in a new thread started on that message; a message
in a thread the bot runs is answered without a mention; a mention in a thread the bot
has not been in reads the thread's earlier messages once (the seed); DMs are answered
inline.
"""

from __future__ import annotations

import logging

import discord

from adapters.discord.content import mentions_me, prompt_text, thread_name, to_incoming
from adapters.discord.files import AttachmentFetcher
from adapters.discord.filters import ignored
from adapters.discord.intake import Intake
from adapters.discord.places import dm_key, is_thread, key_in_thread, open_thread
from adapters.discord.seed import thread_seed
from adapters.discord.sink import FAILURES, NO_PINGS, AnswerSink, ChannelOutlet
from adapters.discord.types import REPLY_CHANNELS, ReplyChannel
from bot.conversation import ConversationKey, SeedLoader
from bot.engine import Engine
from bot.errors import ParleyError

log = logging.getLogger(__name__)


class MessageHandler:
    def __init__(self, engine: Engine, fetcher: AttachmentFetcher, intake: Intake) -> None:
        self._engine = engine
        self._fetcher = fetcher
        self._intake = intake

    async def on_message(self, message: discord.Message, me: discord.ClientUser) -> None:
        if not self._intake.open or ignored(message, me):
            return
        channel = message.channel
        if not isinstance(channel, REPLY_CHANNELS):
            return
        with self._engine.track():
            try:
                await self._answer(message, channel, me)
            except ParleyError as exc:
                log.warning("could not answer message %s: %s", message.id, exc)
                await _say(channel, exc.user_message)

    async def _answer(
        self, message: discord.Message, channel: ReplyChannel, me: discord.ClientUser
    ) -> None:
        addressed = mentions_me(message, me)
        key: ConversationKey | None = None  # None: a thread started on this message
        seed: SeedLoader | None = None
        if message.guild is None:
            key = dm_key(channel.id)
        elif is_thread(channel):
            key = key_in_thread(message.guild.id, channel)
            if not addressed and not await self._engine.has_history(key):
                return
            if isinstance(channel, discord.Thread):
                seed = thread_seed(channel, message.id, me)
        elif not addressed:
            return
        if not await self._engine.claim_event(f"discord:message:{message.id}"):
            return  # a redelivery: the first copy is answered
        text = prompt_text(message, me)
        fetched = await self._fetcher.fetch(message.attachments)
        where: ReplyChannel = channel
        if key is None:
            guild_id = message.guild.id if message.guild else 0
            name = thread_name(text, f"Chat with {message.author.display_name}")
            key, thread = await open_thread(channel, guild_id, message.id, name, fetched.notes)
            where = thread or channel
        incoming = to_incoming(key, text, message.author, fetched, seed=seed)
        await self._engine.handle(incoming, AnswerSink(ChannelOutlet(where), typing=where))


async def _say(channel: ReplyChannel, text: str) -> None:
    try:
        await channel.send(f"⚠️ {text}", allowed_mentions=NO_PINGS)
    except FAILURES as exc:
        log.warning("could not tell the user about a failure: %s", exc)
