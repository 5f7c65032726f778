"""👍/👎 under a Discord answer: buttons that work on any replica and after restarts.

Each button is a `discord.ui.DynamicItem`: its `custom_id` (`parley:fb:<rating>|<model>|
<persona>`) carries everything the rating needs, and the client registers the class at
start-up (`Client.add_dynamic_items`, the persistent form of `add_view` for ids that
carry data), so a press is understood by whichever process receives it. The view sent
with an answer is stopped before it is sent: discord.py then keeps no per-message state
in memory (which would grow with every answer), and presses go through the dynamic item.
"""

from __future__ import annotations

import re
from typing import Any

import discord

from adapters.discord.client import ParleyClients
from bot.intake.feedback import FEEDBACK_PREFIX, Rating, buttons, decode

EMOJI = {"up": "👍", "down": "👎"}


class FeedbackButton(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]],
    template=re.escape(FEEDBACK_PREFIX) + r"(?P<value>.{1,100})",
):
    """One of the two buttons; a press goes to the hooks of the client it reached."""

    def __init__(self, rating: Rating) -> None:
        super().__init__(
            discord.ui.Button(
                style=discord.ButtonStyle.secondary,
                emoji=EMOJI[rating.rating],
                custom_id=FEEDBACK_PREFIX + rating.encode(),
            )
        )
        self.rating = rating

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[Any],
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> FeedbackButton:
        rating = decode(match["value"])
        if rating is None:
            raise ValueError(f"not a Parley feedback button: {match.string[:120]!r}")
        return cls(rating)

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        client = interaction.client
        if isinstance(client, ParleyClients):
            await client.hooks.on_feedback(interaction, self.rating)


def feedback_view(model: str, persona: str) -> discord.ui.View:
    """The buttons for one answer, ready to send (stopped: see the module doc)."""
    view = discord.ui.View(timeout=None)
    for rating in buttons(model, persona):
        view.add_item(FeedbackButton(rating))
    view.stop()
    return view
