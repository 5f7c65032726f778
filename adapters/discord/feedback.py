"""A press of 👍/👎 under a Discord answer, counted and acknowledged privately."""

from __future__ import annotations

import logging
from typing import Any

import discord

from adapters.discord.places import policy_place
from adapters.discord.sink import FAILURES
from adapters.discord.types import REPLY_CHANNELS
from bot.engine import Engine
from bot.intake.feedback import Rating, rate

log = logging.getLogger(__name__)

THANKS = "Thanks for the feedback."
NOT_COUNTED = "I couldn't record that right now. Please try again later."


async def on_feedback(
    engine: Engine, interaction: discord.Interaction[Any], rating: Rating
) -> None:
    message, channel = interaction.message, interaction.channel
    if message is None or not isinstance(channel, REPLY_CHANNELS):
        return
    where = policy_place(channel, interaction.guild_id, interaction.user)
    with engine.track():
        counted = await rate(engine, rating, where, f"discord:{channel.id}:{message.id}")
        try:
            await interaction.response.send_message(
                THANKS if counted else NOT_COUNTED, ephemeral=True
            )
        except FAILURES as exc:
            log.warning("could not acknowledge feedback %s: %s", interaction.id, exc)
