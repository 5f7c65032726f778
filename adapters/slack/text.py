"""Slack's message markup turned into the plain text a model reads.

Slack writes mentions, channels and links as `<...>` tokens and escapes `&`, `<`, `>`.
The bot's own mention is dropped (it only says "this is for you"); other people's
mentions become `@Display Name`, so the model knows who is meant.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_TOKEN = re.compile(r"<([^<>]+)>")
_USER = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")


def mentioned_users(text: str) -> set[str]:
    """The user ids mentioned in `text`."""
    return set(_USER.findall(text))


def mentions(text: str, user_id: str) -> bool:
    return user_id in mentioned_users(text)


def to_plain(text: str, *, bot_user_id: str, names: Mapping[str, str]) -> str:
    """`text` with Slack's tokens resolved; `names` maps user ids to display names."""
    if bot_user_id:
        text = re.sub(rf" ?<@{re.escape(bot_user_id)}(?:\|[^>]*)?> ?", " ", text)

    def resolve(match: re.Match[str]) -> str:
        inner = match.group(1)
        target, _, label = inner.partition("|")
        if target.startswith("@"):
            return "@" + names.get(target[1:], label or target[1:])
        if target.startswith("#"):
            return "#" + (label or target[1:])
        if target.startswith("!"):
            if label:
                return label
            return "@" + target[1:].split("^")[0]  # !here, !channel, !everyone
        if target.startswith("mailto:"):
            return label or target.removeprefix("mailto:")
        return f"{label} ({target})" if label and label != target else target

    text = _TOKEN.sub(resolve, text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&").strip()
