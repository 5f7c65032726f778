"""Where a Discord conversation lives: its key, and the thread an answer opens."""

from __future__ import annotations

import logging

import discord

from adapters.discord.types import ReplyChannel
from bot.conversation import ConversationKey
from bot.policy import Place

log = logging.getLogger(__name__)

PLATFORM = "discord"
NO_THREAD_NOTE = "I couldn't start a thread here, so follow-ups won't have this answer's context."
THREAD_TYPES = frozenset(
    {
        discord.ChannelType.public_thread,
        discord.ChannelType.private_thread,
        discord.ChannelType.news_thread,
    }
)


def dm_key(channel_id: int) -> ConversationKey:
    return ConversationKey(PLATFORM, "dm", str(channel_id), str(channel_id))


def thread_key(guild_id: int, parent_id: int, thread_id: int) -> ConversationKey:
    return ConversationKey(PLATFORM, str(guild_id), str(parent_id), str(thread_id))


def conversation_at(
    channel: ReplyChannel, guild_id: int | None, starter_id: int
) -> tuple[ConversationKey, bool]:
    """Where a conversation the bot is called into in `channel` lives, and whether a
    thread must be opened on message `starter_id` to hold it.

    A DM is one conversation; a thread is its own; at a guild channel's top level the
    answer opens a thread on the message, and a thread started on a message shares its
    id (`open_thread` keeps the same key when no thread can be started).
    """
    if guild_id is None:
        return dm_key(channel.id), False
    if is_thread(channel):
        return key_in_thread(guild_id, channel), False
    return thread_key(guild_id, channel.id, starter_id), True


def is_thread(channel: object) -> bool:
    if isinstance(channel, discord.Thread):
        return True
    return isinstance(channel, discord.PartialMessageable) and channel.type in THREAD_TYPES


def key_in_thread(guild_id: int, thread: ReplyChannel) -> ConversationKey:
    parent_id = getattr(thread, "parent_id", None) or thread.id
    return thread_key(guild_id, parent_id, thread.id)


async def open_thread(
    channel: ReplyChannel, guild_id: int, message_id: int, name: str, notes: list[str]
) -> tuple[ConversationKey, discord.Thread | None]:
    """A thread started on the message, and the conversation it holds.

    Where no thread can be started (no permission, a voice channel's chat) the answer
    goes in the channel, as a conversation of its own, with a note saying so.
    """
    try:
        thread = await channel.get_partial_message(message_id).create_thread(name=name)
    except (discord.HTTPException, ValueError) as exc:
        log.warning("could not start a thread on message %s: %s", message_id, exc)
        notes.append(NO_THREAD_NOTE)
        return thread_key(guild_id, channel.id, message_id), None
    return thread_key(guild_id, channel.id, thread.id), thread


def author_roles(user: discord.abc.User) -> tuple[str, ...]:
    """The ids of a guild member's roles (none in a DM), for the policy's role layer."""
    if isinstance(user, discord.Member):
        return tuple(str(role.id) for role in user.roles)
    return ()


def policy_place(channel: ReplyChannel, guild_id: int | None, user: discord.abc.User) -> Place:
    """Where a command runs, as the policy sees it: a thread is its parent channel's place."""
    if guild_id is None:
        return Place(PLATFORM, "", str(channel.id), str(user.id), is_dm=True)
    parent = getattr(channel, "parent_id", None) if is_thread(channel) else None
    return Place(
        PLATFORM, str(guild_id), str(parent or channel.id), str(user.id), author_roles(user)
    )
