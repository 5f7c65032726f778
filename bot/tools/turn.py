"""Approval of one answer's tools: asked through the sink, decided on the board.

The persona's `approve_tools` adds to the tools that need the asker's approval (MCP's
`destructiveHint` ones always do). Approval is asked through the sink's buttons
(`ask_approval`) and settled on the `ApprovalBoard`, whichever replica the click reaches.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from bot.conversation import IncomingMessage
from bot.reply.sink import ReplySink, approval_asker
from bot.tools.approval import ApprovalBoard, ApprovalRequest, BoardApproval, DecideOutcome
from bot.usage import Governance


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
