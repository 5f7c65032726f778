"""👍/👎 under a Slack answer: a context-actions block with Slack's feedback buttons.

The block goes on `chat.stopStream` of the answer's last message (Slack renders it at the
bottom), or, when the answer wasn't streamed there, in a small message right after it.
A press comes back as a `block_actions` request for `FEEDBACK_ACTION`.
"""

from __future__ import annotations

from typing import Any

from bot.intake.feedback import buttons
from bot.usage.feedback import MAX_COMMENT_CHARS

FEEDBACK_ACTION = "parley_feedback"
FEEDBACK_PROMPT = "Was this answer helpful?"
COMMENT_VIEW = "parley_feedback_comment"  # the 👎 form's callback_id
COMMENT_FIELD = "comment"  # its input's block_id and action_id


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


def comment_form(metadata: str) -> dict[str, Any]:
    """The short "what went wrong?" form a 👎 opens (`metadata`: what the vote was on)."""
    return {
        "type": "modal",
        "callback_id": COMMENT_VIEW,
        "private_metadata": metadata,
        "title": {"type": "plain_text", "text": "What went wrong?"},
        "submit": {"type": "plain_text", "text": "Send"},
        "close": {"type": "plain_text", "text": "Skip"},
        "blocks": [
            {
                "type": "input",
                "block_id": COMMENT_FIELD,
                "label": {"type": "plain_text", "text": "Tell us what was wrong with the answer"},
                "element": {
                    "type": "plain_text_input",
                    "action_id": COMMENT_FIELD,
                    "multiline": True,
                    "max_length": MAX_COMMENT_CHARS,
                },
            }
        ],
    }
