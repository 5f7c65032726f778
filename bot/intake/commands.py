"""The policy's side of a platform's slash command, answered privately before anything is posted.

`/parley usage` (Slack) and `/usage` (Discord) show the person their own use today and
their caps; a command from someone the policy refuses gets the refusal instead of a
public question in the channel.
"""

from __future__ import annotations

from bot.engine import Engine
from bot.errors import StoreUnavailable
from bot.intake.policy import denied_text
from bot.policy import Place

USAGE_WORD = "usage"
USAGE_WORDS = frozenset({USAGE_WORD, "my usage"})


async def own_usage(engine: Engine, place: Place) -> str:
    """What `place.user` used today and their caps, or why it can't be read now."""
    governance = engine.governance
    if governance is None:
        return "Usage isn't counted here."
    try:
        return await governance.own_usage(place)
    except StoreUnavailable as exc:
        return exc.user_message


def refusal(engine: Engine, place: Place) -> str | None:
    """Why the policy refuses a command at `place` (counted), or None when it's allowed."""
    governance = engine.governance
    if governance is None:
        return None
    decision = governance.check_access(place)
    if decision.allowed:
        return None
    engine.metrics.policy_denied.labels(decision.reason or "default").inc()
    return denied_text(decision.reason)


async def governed_command(engine: Engine, place: Place, text: str) -> str | None:
    """The private answer to a command's `text` when the policy has one, else None.

    None means: go on and ask the model.
    """
    refused = refusal(engine, place)
    if refused is not None:
        return refused
    if " ".join(text.lower().split()) in USAGE_WORDS:
        return await own_usage(engine, place)
    return None
