"""Discord: slash commands, mentions and threads, streamed answers (discord.py).

`PLATFORM` is the `parley.platforms` entry point; discord.py is imported only when it
builds the platform.
"""

from bot.service.platform import lazy_platform

PLATFORM = lazy_platform(
    "discord",
    "adapters.discord.platform:DiscordPlatform",
    lambda settings: settings.discord_enabled,
)
