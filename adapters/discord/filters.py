"""The one place that decides which messages the bot never answers."""

from __future__ import annotations

import discord

from adapters.discord.content import mentions_me

# Messages people write; joins, pins, thread starters and the like are system messages.
PERSON_MESSAGES = frozenset({discord.MessageType.default, discord.MessageType.reply})


def ignored(message: discord.Message, me: discord.abc.User) -> bool:
    """Itself, other bots and webhooks, system messages, and @everyone/@here-only pings."""
    if message.author.id == me.id or message.author.bot or message.webhook_id is not None:
        return True
    if message.type not in PERSON_MESSAGES:
        return True
    return message.mention_everyone and not mentions_me(message, me)
