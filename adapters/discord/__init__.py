"""Discord: slash commands, mentions and threads, streamed answers (discord.py)."""

from adapters.discord.platform import DiscordPlatform

__all__ = ["DiscordPlatform"]
