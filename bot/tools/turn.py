"""What one answer may do with tools, from the policy at its place.

The persona's `tools` list decides which tools are offered and may be called in a
channel; its `approve_tools` adds to the tools that need the asker's approval (MCP's
`destructiveHint` ones always do). With no policy every tool is offered, and with
`BOT_TOOLS` off none is. Approval is asked through the sink's buttons
(`ask_approval`) and settled on the `ApprovalBoard`, whichever replica the click reaches.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from bot.conversation import IncomingMessage
from bot.policy import Persona, Place
from bot.sink import ReplySink, approval_asker
from bot.tools.approval import ApprovalBoard, ApprovalRequest, BoardApproval, DecideOutcome
from bot.tools.registry import ToolPredicate
from bot.usage import Governance

DM_WORKSPACE = "dm"  # Discord's DMs have no guild; their key names this instead


def place_of(msg: IncomingMessage) -> Place:
    """Where `msg` was written, as the policy sees places (a thread is its channel's)."""
    key = msg.key
    is_dm = key.workspace == DM_WORKSPACE or (key.platform == "slack" and key.channel[:1] == "D")
    workspace = "" if key.workspace == DM_WORKSPACE else key.workspace
    return Place(key.platform, workspace, key.channel, msg.author_id, is_dm=is_dm)


def persona_at(governance: Governance | None, msg: IncomingMessage) -> Persona | None:
    """The persona at `msg`'s place; None without a policy."""
    return None if governance is None else governance.persona(place_of(msg))


def _never(_: str) -> bool:
    return False


@dataclass(frozen=True, slots=True)
class TurnTools:
    """Which tools one answer may call (None: all) and which need approval by name."""

    allowed: ToolPredicate | None
    needs_approval: ToolPredicate | None

    @classmethod
    def at(cls, governance: Governance | None, msg: IncomingMessage, *, enabled: bool) -> TurnTools:
        if not enabled:
            return cls(_never, None)
        persona = persona_at(governance, msg)
        if persona is None:
            return cls(None, None)
        approve = persona.approve_tools
        return cls(persona.tools.allows, None if approve.none else approve.allows)


def approval_gate(
    board: ApprovalBoard, msg: IncomingMessage, sink: ReplySink, redact: Callable[[str], str]
) -> BoardApproval | None:
    """The gate that asks `msg`'s author through `sink`; None where the sink can't ask.
    The arguments shown with the buttons are `redact`ed, as everything posted is."""
    show = approval_asker(sink)
    if show is None:
        return None

    async def ask(request: ApprovalRequest) -> None:
        await show(dataclasses.replace(request, summary=redact(request.summary)))

    return BoardApproval(board, conversation=msg.key.id, asker_id=msg.author_id, ask=ask)


async def decide_approval(
    board: ApprovalBoard,
    governance: Governance | None,
    *,
    platform: str,
    request_id: str,
    user_id: str,
    approve: bool,
) -> DecideOutcome:
    """Record a press of Approve or Deny; the policy's admins may decide for anyone."""
    admin = governance is not None and governance.policy.policy.is_admin(platform, user_id)
    return await board.decide(request_id, user_id, approve=approve, admin=admin)
