"""The discord.py client Parley runs: plain, or sharded when shards are configured."""

from __future__ import annotations

from typing import Any, Protocol

import discord

from bot.errors import PlatformConfigError
from bot.intake.feedback import Rating
from bot.settings import Settings


class ClientHooks(Protocol):
    async def on_feedback(self, interaction: discord.Interaction[Any], rating: Rating) -> None:
        """👍 or 👎 pressed under an answer (whichever process sent it)."""

    async def setup(self) -> None:
        """Runs once, at login (discord.py's `setup_hook`), not on gateway reconnects."""

    async def on_message(self, message: discord.Message) -> None: ...


class _Parley:
    """The events Parley handles, passed on to its hooks."""

    hooks: ClientHooks

    async def setup_hook(self) -> None:
        await self.hooks.setup()

    async def on_message(self, message: discord.Message) -> None:
        await self.hooks.on_message(message)


class ParleyClient(_Parley, discord.Client):
    pass


class ShardedParleyClient(_Parley, discord.AutoShardedClient):
    pass


ParleyClients = (ParleyClient, ShardedParleyClient)


def intents() -> discord.Intents:
    """Messages in guilds and DMs with their text (the privileged Message Content intent)."""
    chosen = discord.Intents.default()
    chosen.message_content = True
    chosen.typing = False  # other people's typing is of no use to the bot
    chosen.dm_typing = False
    return chosen


def make_client(settings: Settings, hooks: ClientHooks) -> ParleyClient | ShardedParleyClient:
    """A client for `settings`: sharded when DISCORD_SHARD_COUNT is set."""
    options: dict[str, Any] = {
        "intents": intents(),
        "allowed_mentions": discord.AllowedMentions.none(),
        "max_messages": None,  # the bot never looks messages up in the cache
        "chunk_guilds_at_startup": False,
        "guild_ready_timeout": settings.discord_guild_ready_timeout,
    }
    client: ParleyClient | ShardedParleyClient
    count = settings.discord_shard_count
    if count is not None:
        if any(shard >= count for shard in settings.discord_shard_ids):
            raise PlatformConfigError(
                f"DISCORD_SHARD_IDS must be below DISCORD_SHARD_COUNT ({count})."
            )
        if settings.discord_shard_ids:
            options["shard_ids"] = list(settings.discord_shard_ids)
        client = ShardedParleyClient(shard_count=count, **options)
    elif settings.discord_shard_ids:
        raise PlatformConfigError(
            "DISCORD_SHARD_IDS needs DISCORD_SHARD_COUNT (the total shard count)."
        )
    else:
        client = ParleyClient(**options)
    client.hooks = hooks
    return client
