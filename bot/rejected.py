"""What is kept of a user turn whose content the model refused.

The user turn is stored before the model is asked, and every later message resends the
history, images included. Kept as it is, a turn the API refuses (an image it won't take,
a request too large) fails every later message in the thread the same way. Dropped, the
conversation would lose what was asked. So the turn is kept without the parts that can
be blamed: its images, or, for a request too large, its documents. The text a person
typed is always kept: it is within what one message may hold.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.conversation import DocumentRef, ImageRef, ImageURL, Part, TextPart, Turn
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


def without_rejected(turn: Turn, exc: LLMError) -> Kept | None:
    """`turn` without what the model refused in `exc`, or None when nothing in it can be
    blamed (the refusal is about the request's settings, or the turn is text alone)."""
    if not is_content_rejection(exc):
        return None
    images = sum(isinstance(p, ImageRef | ImageURL) for p in turn.parts)
    if images:
        what = "the image" if images == 1 else f"the {images} images"
        parts: list[Part] = [p for p in turn.parts if not isinstance(p, ImageRef | ImageURL)]
        was = "was" if images == 1 else "were"
        parts.append(TextPart(f"[{what} attached here {was} removed: the model refused it]"))
        return Kept(turn.with_parts(parts), what)
    if not isinstance(exc, RequestTooLargeError):
        return None
    documents = [p for p in turn.parts if isinstance(p, DocumentRef)]
    if documents:
        what = (
            f"the document “{documents[0].name}”"
            if len(documents) == 1
            else f"the {len(documents)} documents"
        )
        was = "was" if len(documents) == 1 else "were"
        parts = [p for p in turn.parts if not isinstance(p, DocumentRef)]
        parts.append(TextPart(f"[{what} attached here {was} removed: too large for the model]"))
        return Kept(turn.with_parts(parts), what)
    return None
