"""Splitting a long answer into platform-sized messages without breaking Markdown.

Splits prefer a paragraph break, then a line break, then a space; a hard cut is the
last resort. A code block cut in two is closed at the end of one chunk and reopened,
with its language, at the start of the next, so every chunk renders on its own.
"""

from __future__ import annotations

FENCE = "```"


def split_message(text: str, limit: int) -> list[str]:
    """Chunks of at most `limit` characters whose concatenation, fences aside, is `text`."""
    if limit < 40:
        raise ValueError("limit too small to carry a code fence")
    chunks: list[str] = []
    rest = text
    reopen = ""  # the fence line a chunk starts with when a code block continues
    while rest:
        room = limit - len(reopen)
        if len(rest) <= room:
            chunk = reopen + rest
            if chunk.strip():
                chunks.append(chunk)
            break
        # Leave room for the closing fence this chunk may need.
        cut = _cut_point(rest, room - len(FENCE) - 1)
        body, rest = rest[:cut], rest[cut:]
        chunk = reopen + body
        open_lang = _open_fence(chunk)
        if open_lang is not None:
            chunk += ("" if chunk.endswith("\n") else "\n") + FENCE
            reopen = FENCE + open_lang + "\n"
        else:
            reopen = ""
        chunks.append(chunk)
    return chunks


def _cut_point(text: str, room: int) -> int:
    window = text[:room]
    for sep in ("\n\n", "\n", " "):
        at = window.rfind(sep)
        if at > room // 2:
            return at + len(sep)
    return room


def _open_fence(chunk: str) -> str | None:
    """The language of a code block left open at the end of `chunk`, or None."""
    lang: str | None = None
    for line in chunk.split("\n"):
        stripped = line.strip()
        if stripped.startswith(FENCE):
            lang = None if lang is not None else stripped[len(FENCE) :].strip()
    return lang
