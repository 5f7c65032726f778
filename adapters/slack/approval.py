"""Approving a tool in Slack: Approve and Deny buttons in the thread (block actions).

`post_approval` asks the person who asked; `ApprovalClicks` records a press on the
`ApprovalBoard` in Redis and does nothing else, so a click may reach any replica and
the one waiting for it goes on. Only the asker (or a policy admin) decides; anyone else
is told so privately (an ephemeral message). The buttons' value carries the request id
and the asker's id; the board checks the asker again, so a forged value decides nothing.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.calls import slack_call
from bot.engine import Engine
from bot.tools.approval import ApprovalRequest, DecideOutcome
from bot.tools.turn import decide_approval

log = logging.getLogger(__name__)

APPROVE = "parley_tool_approve"
DENY = "parley_tool_deny"
ACTIONS = re.compile(f"^({APPROVE}|{DENY})$")
MAX_VALUE = 200  # a button's value is at most 2,000 characters; ours are far shorter


def approval_text(request: ApprovalRequest) -> str:
    return request.question(f"<@{request.asker_id}>")


def approval_blocks(request: ApprovalRequest) -> list[dict[str, Any]]:
    value = f"{request.id} {request.asker_id}"
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": approval_text(request)}},
        {
            "type": "actions",
            "elements": [
                {
                    "type": "button",
                    "action_id": APPROVE,
                    "style": "primary",
                    "text": {"type": "plain_text", "text": "Approve"},
                    "value": value,
                },
                {
                    "type": "button",
                    "action_id": DENY,
                    "style": "danger",
                    "text": {"type": "plain_text", "text": "Deny"},
                    "value": value,
                },
            ],
        },
    ]


async def post_approval(
    client: AsyncWebClient, channel: str, thread_ts: str | None, request: ApprovalRequest
) -> None:
    """Ask in the answer's thread; a failure is logged (the wait then ends as a refusal)."""
    await slack_call(
        client.chat_postMessage,
        channel=channel,
        thread_ts=thread_ts,
        text=approval_text(request),
        blocks=approval_blocks(request),
    )


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


class ApprovalClicks:
    """The block-actions listener for Approve and Deny."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    async def on_click(self, ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        actions = body.get("actions")
        action = actions[0] if isinstance(actions, list) and actions else {}
        value = _str(action.get("value") if isinstance(action, dict) else None)[:MAX_VALUE]
        request_id, _, asker = value.partition(" ")
        user = _str((body.get("user") or {}).get("id"))
        channel = _str((body.get("channel") or {}).get("id"))
        message = body.get("message") or {}
        if not (request_id and user and channel and isinstance(message, dict)):
            log.info("dropped an approval click without its request, user or channel")
            return
        approve = isinstance(action, dict) and action.get("action_id") == APPROVE
        engine = self._engine
        with engine.track():
            outcome = await decide_approval(
                engine.approvals,
                engine.governance,
                platform="slack",
                request_id=request_id,
                user_id=user,
                approve=approve,
            )
            thread = _str(message.get("thread_ts")) or None
            if outcome is DecideOutcome.OK:
                verb = "✅ Approved" if approve else "🚫 Denied"
                await slack_call(
                    client.chat_update,
                    channel=channel,
                    ts=_str(message.get("ts")),
                    text=f"{_str(message.get('text'))}\n{verb} by <@{user}>.",
                    blocks=[],
                )
                return
            if outcome is DecideOutcome.FORBIDDEN:
                text = f"Only <@{asker}> can approve this." if asker else "Only the asker can."
            else:
                text = "This was already answered, or it waited too long and expired."
            await slack_call(
                client.chat_postEphemeral, channel=channel, user=user, text=text, thread_ts=thread
            )


def register_approval(app: AsyncApp, engine: Engine) -> None:
    """Listen for Approve and Deny presses on `app`."""
    app.action(ACTIONS)(ApprovalClicks(engine).on_click)
