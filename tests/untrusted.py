"""Reading what the model was sent inside `bot.text.neutralize.wrap_untrusted` blocks."""

from __future__ import annotations

import re

_BLOCK = re.compile(
    r'<<<UNTRUSTED source="(?P<source>[^"]*)" id=(?P<id>[0-9a-f]+)>>>\n'
    r"(?P<body>.*)\n<<<END UNTRUSTED id=(?P=id)>>>",
    re.S,
)


def unwrapped(content: str) -> str:
    """The text inside the one untrusted block `content` is (fails if it is not one)."""
    found = _BLOCK.fullmatch(content)
    assert found is not None, f"not an untrusted block: {content!r}"
    return found["body"]


def tool_message(call_id: str, text: str, tool: str) -> dict[str, str]:
    """The role=tool message answering `call_id` with `text`, as the tool loop sends it."""
    from bot.text.neutralize import untrusted_tool_result

    return {"role": "tool", "tool_call_id": call_id, "content": untrusted_tool_result(tool, text)}
