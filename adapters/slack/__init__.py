"""Slack: mentions, DMs, threads and the slash command, answered by streaming into threads."""

from adapters.slack.platform import SlackPlatform

__all__ = ["SlackPlatform"]
