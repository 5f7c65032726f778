"""Platform adapters: each turns one platform's events into the engine's model and posts
the engine's answers back. A platform's library is imported only when it is configured."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.platform import Platform
from bot.settings import Settings

if TYPE_CHECKING:
    from bot.engine import Engine


def build_platforms(settings: Settings, engine: Engine) -> list[Platform]:
    platforms: list[Platform] = []
    if settings.slack_enabled:
        from adapters.slack import SlackPlatform

        platforms.append(SlackPlatform(settings, engine))
    if settings.discord_enabled:
        from adapters.discord import DiscordPlatform

        platforms.append(DiscordPlatform(settings, engine))
    return platforms
