"""Waiting on what Redis holds: an answer is counted just after it is shown, a form
is stored after Slack has its acknowledgement."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from bot.policy import Place
from bot.usage import Governance


async def until_counted(governance: Governance | None, place: Place, answers: int) -> None:
    """Wait (about 10 s at most) until `place.user` has `answers` answers counted today."""
    assert governance is not None
    want = f"in {answers} answer{'s' if answers != 1 else ''}."

    async def counted() -> bool:
        return want in await governance.own_usage(place)

    await until(counted, f"{answers} answer(s) of {place.user} counted")


async def until(condition: Callable[[], Awaitable[bool]], what: str = "condition") -> None:
    """Wait (about 10 s at most) until `condition()` holds."""
    for _ in range(500):
        if await condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")
