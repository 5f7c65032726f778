"""Reading a thread's earlier messages once, when the bot is called into it."""

from __future__ import annotations

import logging

import discord

from adapters.discord.content import PERSON_MESSAGES, prompt_text
from bot.conversation import Role, SeedLoader, Turn

log = logging.getLogger(__name__)

SEED_MESSAGES = 100  # one page of history: the recent context, one API call


def thread_seed(thread: discord.Thread, before: int, me: discord.abc.User) -> SeedLoader:
    """Loads the thread's starter message and up to SEED_MESSAGES before `before`."""

    async def load() -> list[Turn]:
        found: list[discord.Message] = []
        async for message in thread.history(limit=SEED_MESSAGES, before=discord.Object(before)):
            found.append(message)
        found.reverse()
        starter = await _starter(thread)
        if starter is not None:
            found.insert(0, starter)
        return [turn for message in found if (turn := _turn(message, me)) is not None]

    return load


async def _starter(thread: discord.Thread) -> discord.Message | None:
    """The channel message the thread was started on, when there is one."""
    if thread.starter_message is not None:
        return thread.starter_message
    if not isinstance(thread.parent, discord.TextChannel):
        return None  # a forum post's first message is in the thread itself
    try:
        return await thread.parent.fetch_message(thread.id)
    except discord.HTTPException:
        return None  # started without a message


def _turn(message: discord.Message, me: discord.abc.User) -> Turn | None:
    if message.type not in PERSON_MESSAGES:
        return None
    text = prompt_text(message, me)
    if message.attachments:
        names = ", ".join(a.filename for a in message.attachments)
        text = f"{text}\n[attached: {names}]".strip()
    if not text:
        return None
    if message.author.id == me.id:
        return Turn.text(Role.ASSISTANT, text)
    return Turn.text(Role.USER, text, author=message.author.display_name)
