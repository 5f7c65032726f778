"""👍/👎 under a Slack answer: a context-actions block with Slack's feedback buttons.

The block goes on `chat.stopStream` of the answer's last message (Slack renders it at the
bottom), or, when the answer wasn't streamed there, in a small message right after it.
A press comes back as a `block_actions` request for `FEEDBACK_ACTION`.
"""

from __future__ import annotations

from typing import Any

from bot.intake.feedback import buttons

FEEDBACK_ACTION = "parley_feedback"
FEEDBACK_PROMPT = "Was this answer helpful?"


def _button(emoji: str, label: str, value: str) -> dict[str, Any]:
    return {
        "text": {"type": "plain_text", "text": emoji},
        "value": value,
        "accessibility_label": label,
    }


def feedback_blocks(model: str, persona: str) -> list[dict[str, Any]]:
    up, down = buttons(model, persona)
    return [
        {
            "type": "context_actions",
            "elements": [
                {
                    "type": "feedback_buttons",
                    "action_id": FEEDBACK_ACTION,
                    "positive_button": _button("👍", "Good answer", up.encode()),
                    "negative_button": _button("👎", "Bad answer", down.encode()),
                }
            ],
        }
    ]
