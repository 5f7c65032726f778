"""Type aliases for the discord.py objects the adapter writes to."""

from __future__ import annotations

import discord

# Channels an answer can be posted in: each can send, and edit by message id.
ReplyChannel = (
    discord.TextChannel
    | discord.Thread
    | discord.DMChannel
    | discord.VoiceChannel
    | discord.StageChannel
    | discord.PartialMessageable
)
REPLY_CHANNELS = (
    discord.TextChannel,
    discord.Thread,
    discord.DMChannel,
    discord.VoiceChannel,
    discord.StageChannel,
    discord.PartialMessageable,
)
