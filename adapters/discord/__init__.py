"""Discord: slash commands, mentions and threads, streamed answers (discord.py).

`PLATFORM` is the `parley.platforms` entry point; discord.py is imported only when it
builds the platform.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.platform import Platform, PlatformEntry
from bot.settings import Settings

if TYPE_CHECKING:
    from bot.intake import Intake


def _build(settings: Settings, intake: Intake) -> Platform:
    from adapters.discord.platform import DiscordPlatform

    return DiscordPlatform(settings, intake)


def _configured(settings: Settings) -> bool:
    return settings.discord_enabled


PLATFORM = PlatformEntry("discord", Settings, _configured, _build)
