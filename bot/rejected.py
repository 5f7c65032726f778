"""What is kept of a user turn whose content the model refused.

The user turn is stored before the model is asked, and every later message resends the
history, images included. Kept as it is, a turn the API refuses (an image it won't take,
a request too large) fails every later message in the thread the same way. Dropped, the
conversation would lose what was asked. So the turn is kept without the parts that can
be blamed: its images, or, for a request too large with no image in it, the text beyond
what a user may type in one message (attached files are what makes a turn that big).
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.conversation import ImageRef, ImageURL, Part, TextPart, Turn
from bot.errors import BadRequestError, LLMError, RequestTooLargeError

# A 400 naming one of these is about the request's settings, not the message's content.
_REQUEST_PARAMS = frozenset(
    {
        "model",
        "tools",
        "tool_choice",
        "stream",
        "temperature",
        "top_p",
        "top_k",
        "max_tokens",
        "stop",
        "frequency_penalty",
        "presence_penalty",
    }
)
TEXT_CUT_NOTE = "\n[the rest was removed: the request was too large for the model]"


@dataclass(frozen=True, slots=True)
class Kept:
    turn: Turn  # the turn as it stays in the history
    removed: str  # what was left out, as the user is told: "the image", "2 images", ...


def is_content_rejection(exc: LLMError) -> bool:
    """Whether the API refused the content of the messages rather than the request's
    settings. A 400 that names no parameter counts (an invalid image names none)."""
    if isinstance(exc, RequestTooLargeError):
        return True
    return isinstance(exc, BadRequestError) and exc.param not in _REQUEST_PARAMS


def without_rejected(turn: Turn, exc: LLMError, max_chars: int) -> Kept | None:
    """`turn` without what the model refused in `exc`, or None when nothing in it can be
    blamed (the refusal is about the request's settings, or the turn is plain short text).
    `max_chars` is how much text a too-large turn keeps."""
    if not is_content_rejection(exc):
        return None
    images = sum(isinstance(p, ImageRef | ImageURL) for p in turn.parts)
    if images:
        what = "the image" if images == 1 else f"the {images} images"
        parts: list[Part] = [p for p in turn.parts if isinstance(p, TextPart)]
        was = "was" if images == 1 else "were"
        parts.append(TextPart(f"[{what} attached here {was} removed: the model refused it]"))
        return Kept(Turn.make(turn.role, parts, turn.author), what)
    if isinstance(exc, RequestTooLargeError) and len(turn.plain_text) > max_chars:
        text = turn.plain_text[:max_chars] + TEXT_CUT_NOTE
        return Kept(
            Turn.make(turn.role, [TextPart(text)], turn.author),
            f"the text beyond its first {max_chars:,} characters",
        )
    return None
