"""Splitting a long answer into platform-sized messages without breaking Markdown.

Splits prefer a paragraph break, then a line break, then a space; a hard cut is the
last resort. A code block cut in two is closed at the end of one chunk and reopened,
with its language, at the start of the next, so every chunk renders on its own.

The text is untrusted (a model can be asked to repeat anything), so the work is bounded
by construction: every piece takes at least a quarter of `limit` characters of the text,
and each character is looked at a constant number of times.
"""

from __future__ import annotations

from dataclasses import dataclass

FENCE = "```"
MIN_LIMIT = 40
# The longest closing repair a piece may need: a newline and a fence.
_CLOSE_ROOM = len(FENCE) + 1


@dataclass(frozen=True, slots=True)
class Piece:
    """One message of a split: `body` is the next slice of the original text; `reopen`
    (a fence line, ending in a newline) continues a code block the previous piece closed,
    and `close` (a fence, after a newline unless `body` ends in one) closes a code block
    this piece leaves open."""

    reopen: str
    body: str
    close: str

    def render(self) -> str:
        return self.reopen + self.body + self.close


def split_message(text: str, limit: int) -> list[str]:
    """Chunks of at most `limit` characters whose concatenation, fences aside, is `text`.

    `limit` must be at least `MIN_LIMIT`. A chunk that would hold only whitespace is
    left out (platforms refuse blank messages); see `split_pieces` for the exact layout.
    """
    return [chunk for piece in split_pieces(text, limit) if (chunk := piece.render()).strip()]


def split_pieces(text: str, limit: int) -> list[Piece]:
    """The split `split_message` posts: the bodies, joined, are exactly `text`, and each
    piece renders to at most `limit` characters."""
    if limit < MIN_LIMIT:
        raise ValueError(f"limit {limit} is too small to carry a code fence (minimum {MIN_LIMIT})")
    # A fence line longer than this is reopened without its info string: reopening it
    # whole could leave no room for text (a pasted line of `limit - 5` characters).
    max_reopen = limit // 4
    pieces: list[Piece] = []
    start, reopen = 0, ""
    while start < len(text):
        room = limit - len(reopen)
        if len(text) - start <= room:
            pieces.append(Piece(reopen, text[start:], ""))
            break
        end = start + _cut_point(text[start : start + room - _CLOSE_ROOM])
        body = text[start:end]
        lang = _open_fence(reopen + body)
        if lang is None:
            pieces.append(Piece(reopen, body, ""))
            reopen = ""
        else:
            close = FENCE if (reopen + body).endswith("\n") else "\n" + FENCE
            pieces.append(Piece(reopen, body, close))
            line = f"{FENCE}{lang}\n"
            reopen = line if len(line) <= max_reopen else FENCE + "\n"
        start = end
    return pieces


def _cut_point(window: str) -> int:
    """Where to end a piece that may take all of `window` (never 0: every piece advances)."""
    room = len(window)
    for sep in ("\n\n", "\n", " "):
        at = window.rfind(sep)
        if at > room // 2:
            return at + len(sep)
    return room


def _open_fence(chunk: str) -> str | None:
    """The info string of a code block left open at the end of `chunk`, or None."""
    lang: str | None = None
    for line in chunk.split("\n"):
        stripped = line.strip()
        if stripped.startswith(FENCE):
            lang = None if lang is not None else stripped[len(FENCE) :].strip()
    return lang
