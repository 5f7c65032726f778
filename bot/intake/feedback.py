"""👍/👎 on a finished answer: what a button carries, and how a press is counted.

A button has to work on any replica and after restarts, so it carries everything the
rating needs (the rating, the model that answered, the persona) in its own value: on
Discord a `custom_id` of at most 100 characters, on Slack a button value. A press is
untrusted input like any other: `decode` bounds and checks it before anything is stored.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from bot.engine import Engine
from bot.errors import StoreUnavailable
from bot.policy import Place
from bot.usage.feedback import RATINGS

log = logging.getLogger(__name__)

FEEDBACK_PREFIX = "parley:fb:"  # Slack's action_id prefix and Discord's custom_id prefix
MAX_VALUE = 100 - len(FEEDBACK_PREFIX)  # Discord's custom_id limit, less the prefix
MAX_MODEL = 40
SEPARATOR = "|"


@dataclass(frozen=True, slots=True)
class Rating:
    """One button: which way it rates, and the answer's model and persona."""

    rating: str
    model: str
    persona: str

    def encode(self) -> str:
        """The button's value, at most `MAX_VALUE` characters (long names are cut)."""
        model = self.model.replace(SEPARATOR, "")[:MAX_MODEL]
        head = f"{self.rating}{SEPARATOR}{model}{SEPARATOR}"
        return head + self.persona.replace(SEPARATOR, "")[: MAX_VALUE - len(head)]


def buttons(model: str, persona: str) -> tuple[Rating, Rating]:
    """The 👍 and 👎 of an answer."""
    return Rating("up", model, persona), Rating("down", model, persona)


def decode(value: object) -> Rating | None:
    """A button's value read back, or None when it isn't one of Parley's."""
    if not isinstance(value, str) or len(value) > MAX_VALUE:
        return None
    parts = value.split(SEPARATOR)
    if len(parts) != 3 or parts[0] not in RATINGS or not parts[1]:
        return None
    return Rating(*parts)


async def rate(
    engine: Engine, rating: Rating, place: Place, answer_id: str, comment: str = ""
) -> bool:
    """Store `place.user`'s rating of an answer (and what went wrong, if they said);
    False when it could not be stored."""
    governance = engine.governance
    if governance is None:
        return False
    try:
        await governance.feedback.rate(
            answer_id=answer_id,
            place=place,
            model=rating.model,
            persona=rating.persona,
            rating=rating.rating,
            comment=comment,
        )
    except StoreUnavailable as exc:
        log.warning("feedback on %s not stored: %s", answer_id, exc)
        return False
    return True
