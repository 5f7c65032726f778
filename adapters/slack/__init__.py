"""Slack: mentions, DMs, threads and the slash command, answered by streaming into threads.

`PLATFORM` is the `parley.platforms` entry point; slack-bolt is imported only when it
builds the platform.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.platform import Platform, PlatformEntry
from bot.settings import Settings

if TYPE_CHECKING:
    from bot.intake import Intake


def _build(settings: Settings, intake: Intake) -> Platform:
    from adapters.slack.platform import SlackPlatform

    return SlackPlatform(settings, intake)


def _configured(settings: Settings) -> bool:
    return settings.slack_enabled


PLATFORM = PlatformEntry("slack", Settings, _configured, _build)
