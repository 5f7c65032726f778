"""Messages enter the intake a few per pass of the event loop, in the order they came."""

from __future__ import annotations

import asyncio

import pytest
import uvloop

from bot.intake.turnstile import Turnstile


async def _passes_between_entries(count: int, per_pass: int) -> tuple[list[str], list[int]]:
    turnstile = Turnstile(per_pass)
    log: list[str] = []
    entered: list[int] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        # One tick per pass of the loop: what the loop does besides letting callers in.
        while not stop.is_set():
            log.append("tick")
            await asyncio.sleep(0)

    async def caller(n: int) -> None:
        await turnstile.through()
        log.append("in")
        entered.append(n)

    ticking = asyncio.create_task(ticker())
    await asyncio.gather(*(caller(n) for n in range(count)))
    stop.set()
    await ticking
    return log, entered


def _most_in_one_pass(log: list[str]) -> int:
    """The longest run of entries with no tick of the loop between them."""
    return max(len(run) for run in "".join("i" if e == "in" else " " for e in log).split())


@pytest.mark.parametrize("per_pass", [1, 3])
async def test_callers_go_through_per_pass_in_the_order_they_came(per_pass: int) -> None:
    log, entered = await _passes_between_entries(20, per_pass)
    assert entered == list(range(20))
    assert _most_in_one_pass(log) == per_pass


def test_the_same_holds_on_uvloop() -> None:
    log, entered = uvloop.run(_passes_between_entries(20, 3))
    assert entered == list(range(20))
    assert _most_in_one_pass(log) == 3


async def test_a_caller_cancelled_while_waiting_is_passed_over() -> None:
    turnstile = Turnstile(1)
    first = asyncio.create_task(turnstile.through())
    second = asyncio.create_task(turnstile.through())
    third = asyncio.create_task(turnstile.through())
    await asyncio.sleep(0)  # all three are waiting
    second.cancel()
    await asyncio.wait_for(asyncio.gather(first, third), timeout=5)
    with pytest.raises(asyncio.CancelledError):
        await second
    await asyncio.wait_for(turnstile.through(), timeout=5)  # and it keeps turning
