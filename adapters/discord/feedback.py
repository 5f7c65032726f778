"""A press of 👍/👎 under a Discord answer, counted and acknowledged privately.

A 👎 opens a short "what went wrong?" form instead of the thanks; what is written there
is stored with the vote. The form lives in this process for `FORM_TIMEOUT` seconds.
"""

from __future__ import annotations

import logging
from typing import Any

import discord

from adapters.discord.places import policy_place
from adapters.discord.sink import FAILURES
from adapters.discord.types import REPLY_CHANNELS
from bot.engine import Engine
from bot.intake.feedback import Rating, rate
from bot.policy import Place
from bot.usage.feedback import MAX_COMMENT_CHARS

log = logging.getLogger(__name__)

THANKS = "Thanks for the feedback."
NOT_COUNTED = "I couldn't record that right now. Please try again later."
FORM_TIMEOUT = 600.0


class WhatWentWrong(discord.ui.Modal, title="What went wrong?"):
    comment: discord.ui.TextInput[WhatWentWrong] = discord.ui.TextInput(
        label="Tell us what was wrong with the answer",
        style=discord.TextStyle.paragraph,
        max_length=MAX_COMMENT_CHARS,
    )

    def __init__(self, engine: Engine, rating: Rating, where: Place, answer_id: str) -> None:
        super().__init__(timeout=FORM_TIMEOUT)
        self._engine, self._rating, self._where, self._answer = engine, rating, where, answer_id

    async def on_submit(self, interaction: discord.Interaction[Any]) -> None:
        with self._engine.track():
            counted = await rate(
                self._engine, self._rating, self._where, self._answer, self.comment.value
            )
            await _acknowledge(interaction, counted)


async def on_feedback(
    engine: Engine, interaction: discord.Interaction[Any], rating: Rating
) -> None:
    message, channel = interaction.message, interaction.channel
    if message is None or not isinstance(channel, REPLY_CHANNELS):
        return
    where = policy_place(channel, interaction.guild_id, interaction.user)
    answer_id = f"discord:{channel.id}:{message.id}"
    with engine.track():
        counted = await rate(engine, rating, where, answer_id)
        if not (counted and rating.rating == "down"):
            await _acknowledge(interaction, counted)
            return
        try:
            await interaction.response.send_modal(WhatWentWrong(engine, rating, where, answer_id))
        except FAILURES as exc:
            log.warning("could not open the feedback form %s: %s", interaction.id, exc)


async def _acknowledge(interaction: discord.Interaction[Any], counted: bool) -> None:
    try:
        await interaction.response.send_message(THANKS if counted else NOT_COUNTED, ephemeral=True)
    except FAILURES as exc:
        log.warning("could not acknowledge feedback %s: %s", interaction.id, exc)
