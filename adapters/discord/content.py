"""Reading a Discord message: is the bot addressed, and what did the person ask."""

from __future__ import annotations

import re

import discord

from adapters.discord.files import Fetched
from bot.conversation import ConversationKey, IncomingMessage, SeedLoader

THREAD_NAME_CHARS = 60
# Messages people write; joins, pins, thread starters and the like are system messages.
PERSON_MESSAGES = frozenset(
    {discord.MessageType.default, discord.MessageType.reply}
)  # Discord allows 100; shorter names read better in the sidebar


def mentions_me(message: discord.Message, me: discord.abc.User) -> bool:
    """The bot itself, or its integration role (what Discord's autocomplete often picks)."""
    if me.id in message.raw_mentions:
        return True
    return any(
        role.tags is not None and role.tags.bot_id == me.id for role in message.role_mentions
    )


def prompt_text(message: discord.Message, me: discord.abc.User) -> str:
    """The message as the model should read it: the bot's mention gone, people by name."""
    text = re.sub(rf"<@!?{me.id}>", "", message.content)
    for role in message.role_mentions:
        replacement = "" if role.tags is not None and role.tags.bot_id == me.id else f"@{role.name}"
        text = text.replace(role.mention, replacement)
    for user in message.mentions:
        text = re.sub(rf"<@!?{user.id}>", f"@{user.display_name}", text)
    return text.strip()


def thread_name(question: str, fallback: str) -> str:
    """A thread title from the first words of the question."""
    words = " ".join(question.split())
    words = re.sub(r"[`*_~|>]", "", words).strip()
    if not words:
        return fallback[:THREAD_NAME_CHARS]
    if len(words) <= THREAD_NAME_CHARS:
        return words
    cut = words[: THREAD_NAME_CHARS - 1]
    if " " in cut:
        cut = cut[: cut.rfind(" ")]
    return cut.rstrip(" ,.;:-") + "…"


def to_incoming(
    key: ConversationKey,
    text: str,
    person: discord.abc.User,
    fetched: Fetched,
    *,
    seed: SeedLoader | None,
    model: str | None = None,
) -> IncomingMessage:
    """What the person asked, for the engine."""
    return IncomingMessage(
        key=key,
        text=text,
        author=person.display_name,
        author_id=str(person.id),
        files=fetched.files,
        notes=fetched.notes,
        seed=seed,
        model=model,
    )
