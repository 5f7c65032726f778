"""Discord messages turned into the intake's envelopes, and read in full when answered.

A mention in a channel is answered in a new thread started on that message; a message
in a thread the bot runs is answered without a mention; a mention in a thread the bot
has not been in reads the thread's earlier messages once (the seed); DMs are answered
inline.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import discord

from adapters.discord.content import (
    PERSON_MESSAGES,
    mentions_me,
    prompt_text,
    thread_name,
    to_incoming,
)
from adapters.discord.files import AttachmentFetcher
from adapters.discord.places import (
    PLATFORM,
    author_roles,
    conversation_at,
    is_thread,
    open_thread,
)
from adapters.discord.seed import thread_seed
from adapters.discord.sink import FAILURES, AnswerSink, ChannelOutlet
from adapters.discord.types import REPLY_CHANNELS, ReplyChannel
from bot.conversation import ConversationKey, IncomingMessage
from bot.intake import Envelope, Intake
from bot.metrics import Metrics

log = logging.getLogger(__name__)

DENIED_REACTION = "🚫"


def envelope(
    message: discord.Message, channel: ReplyChannel, me: discord.abc.User, key: ConversationKey
) -> Envelope:
    """What the intake needs to know about `message`, with nothing fetched yet."""
    mentioned = mentions_me(message, me)
    return Envelope(
        platform=PLATFORM,
        event_id=f"discord:message:{message.id}",
        key=key,
        author_id=str(message.author.id),
        author_name=message.author.display_name,
        text=prompt_text(message, me),
        is_mention=mentioned,
        is_dm=message.guild is None,
        in_thread=is_thread(channel),
        is_self=message.author.id == me.id,
        is_bot=message.author.bot or message.webhook_id is not None,
        # System messages, and @everyone/@here pings that don't name the bot itself.
        housekeeping=message.type not in PERSON_MESSAGES
        or (message.mention_everyone and not mentioned),
        reply_to=channel,
        files=tuple(message.attachments),
        roles=author_roles(message.author),
    )


@dataclass(slots=True)
class MessageSource:
    """What the intake asks of Discord about one message."""

    fetcher: AttachmentFetcher
    message: discord.Message
    channel: ReplyChannel
    me: discord.abc.User
    opens_thread: bool  # at a guild channel's top level: the answer opens a thread
    where: ReplyChannel  # where the answer goes: the channel, or the thread it opened
    metrics: Metrics

    async def read(self, env: Envelope) -> IncomingMessage:
        message, channel = self.message, self.channel
        fetched = await self.fetcher.fetch(message.attachments)
        seed = None
        if isinstance(channel, discord.Thread):
            seed = thread_seed(channel, message.id, self.me)
        if self.opens_thread and message.guild is not None:
            name = thread_name(env.text, f"Chat with {message.author.display_name}")
            _, thread = await open_thread(
                channel, message.guild.id, message.id, name, fetched.notes
            )
            self.where = thread or channel
        return to_incoming(env.key, env.text, message.author, fetched, seed=seed)

    def reply(self, env: Envelope) -> AnswerSink:
        return AnswerSink(
            ChannelOutlet(self.where), metrics=self.metrics, typing=self.where, ask_in=self.where
        )

    async def tell_privately(self, env: Envelope, text: str) -> None:
        """A plain message can't be answered privately: a reaction says no, quietly."""
        try:
            await self.message.add_reaction(DENIED_REACTION)
        except FAILURES as exc:
            log.warning("could not react to message %s: %s", self.message.id, exc)

    async def holds_thread(self, env: Envelope) -> bool:
        """A thread the bot started (on a message it answered) is the bot's."""
        return isinstance(self.channel, discord.Thread) and self.channel.owner_id == self.me.id


class MessageHandler:
    def __init__(self, intake: Intake, fetcher: AttachmentFetcher) -> None:
        self._intake = intake
        self._fetcher = fetcher

    async def on_message(self, message: discord.Message, me: discord.ClientUser) -> None:
        channel = message.channel
        if not isinstance(channel, REPLY_CHANNELS):
            return
        guild_id = message.guild.id if message.guild else None
        key, opens_thread = conversation_at(channel, guild_id, message.id)
        source = MessageSource(
            self._fetcher, message, channel, me, opens_thread, channel, self._intake.engine.metrics
        )
        await self._intake.submit(envelope(message, channel, me, key), source)
