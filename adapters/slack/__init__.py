"""Slack: mentions, DMs, threads and the slash command, answered by streaming into threads.

`PLATFORM` is the `parley.platforms` entry point; slack-bolt is imported only when it
builds the platform.
"""

from bot.service.platform import lazy_platform

PLATFORM = lazy_platform(
    "slack", "adapters.slack.platform:SlackPlatform", lambda settings: settings.slack_enabled
)
