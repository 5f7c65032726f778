"""Approving a tool in Discord: Approve and Deny buttons that survive restarts.

The buttons are `DynamicItem`s: their custom id carries the request id and the asker's
id (`parley:tool:approve:<request>:<asker>`), and the class is registered on the client
at start-up (`register_approval`), so a press is handled by any process, including one
started after the buttons were posted. A press only records the decision on the
`ApprovalBoard` in Redis; the replica waiting for it goes on. Only the asker (or a
policy admin) decides; anyone else is told so in a message only they see.
"""

from __future__ import annotations

import logging
import re
import weakref
from typing import Any

import discord

from adapters.discord.types import ReplyChannel
from bot.engine import Engine
from bot.tools.approval import ApprovalRequest, DecideOutcome
from bot.tools.turn import decide_approval

log = logging.getLogger(__name__)

NO_PINGS = discord.AllowedMentions.none()
TEMPLATE = (
    r"parley:tool:(?P<verdict>approve|deny):"
    r"(?P<request>[A-Za-z0-9_-]{1,43}):(?P<asker>\d{1,20})"
)


def custom_id(verdict: str, request_id: str, asker_id: str) -> str:
    return f"parley:tool:{verdict}:{request_id}:{asker_id}"


def approval_text(request: ApprovalRequest) -> str:
    return request.question(f"<@{request.asker_id}>")


def _button(verdict: str, request_id: str, asker_id: str) -> discord.ui.Button[Any]:
    approve = verdict == "approve"
    return discord.ui.Button(
        label="Approve" if approve else "Deny",
        style=discord.ButtonStyle.success if approve else discord.ButtonStyle.danger,
        custom_id=custom_id(verdict, request_id, asker_id),
    )


# Each client's engine (several clients may run in one process: tests, shards).
_ENGINES: weakref.WeakKeyDictionary[discord.Client, Engine] = weakref.WeakKeyDictionary()


class ApprovalButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=TEMPLATE):
    """Approve or Deny for one request, handled by the engine of the client it reaches."""

    def __init__(self, verdict: str, request_id: str, asker_id: str) -> None:
        super().__init__(_button(verdict, request_id, asker_id))
        self.approve = verdict == "approve"
        self.request_id = request_id
        self.asker_id = asker_id

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[discord.Client],
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> ApprovalButton:
        return cls(match["verdict"], match["request"], match["asker"])

    async def callback(self, interaction: discord.Interaction[discord.Client]) -> None:
        engine = _ENGINES.get(interaction.client)
        if engine is None:
            return
        user = str(interaction.user.id)
        with engine.track():
            outcome = await decide_approval(
                engine.approvals,
                engine.governance,
                platform="discord",
                request_id=self.request_id,
                user_id=user,
                approve=self.approve,
            )
            if outcome is DecideOutcome.OK:
                verb = "✅ Approved" if self.approve else "🚫 Denied"
                before = interaction.message.content if interaction.message else ""
                await interaction.response.edit_message(
                    content=f"{before}\n{verb} by <@{user}>.", view=None, allowed_mentions=NO_PINGS
                )
                return
            if outcome is DecideOutcome.FORBIDDEN:
                text = f"Only <@{self.asker_id}> can approve this."
            else:
                text = "This was already answered, or it waited too long and expired."
            await interaction.response.send_message(text, ephemeral=True, allowed_mentions=NO_PINGS)


async def post_approval(channel: ReplyChannel, request: ApprovalRequest) -> None:
    """Ask in the answer's channel or thread, with the two buttons."""
    view = discord.ui.View(timeout=None)
    for verdict in ("approve", "deny"):
        view.add_item(ApprovalButton(verdict, request.id, request.asker_id))
    await channel.send(approval_text(request), view=view, allowed_mentions=NO_PINGS)


def register_approval(client: discord.Client, engine: Engine) -> None:
    """Handle Approve and Deny presses on `client`, including buttons posted before a restart."""
    _ENGINES[client] = engine
    client.add_dynamic_items(ApprovalButton)
