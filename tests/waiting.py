"""Waiting on the usage counters: an answer is counted just after it is shown."""

from __future__ import annotations

import asyncio

from bot.policy import Place
from bot.usage import Governance


async def until_counted(governance: Governance | None, place: Place, answers: int) -> None:
    """Wait (about 10 s at most) until `place.user` has `answers` answers counted today."""
    assert governance is not None
    want = f"in {answers} answer{'s' if answers != 1 else ''}."
    for _ in range(500):  # polled: the count is in Redis, written by the engine's task
        if want in await governance.own_usage(place):
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{place.user} never had {answers} answer(s) counted")
