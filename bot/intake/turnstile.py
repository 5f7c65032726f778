"""Messages enter the intake a few per pass of the event loop.

A burst arrives as hundreds of HTTP requests at once, and each must be acknowledged
quickly (Slack redelivers an event it has no answer for within 3 s). Once acknowledged,
each starts its answer: the intake's steps, the conversation store, the request to the
model, close to a millisecond of CPU, and with the in-process store not one wait in it.
Started as soon as they are submitted, those starts fill each pass of the loop, and the
requests read meanwhile wait behind them for their acknowledgement.

`Turnstile.through` lets `PER_PASS` waiting messages on per pass, so a pass acknowledges
every request already read and starts a few answers. Measured at 200 mentions at once
(`python -m bench.slack`, in-process store): all at once, ack p99 116-125 ms; one per
pass, 75 ms but 0.4 ms more CPU per turn (each answer's reads and writes no longer
share the loop's passes with others'); 16 per pass, 74-76 ms and the CPU of all at
once. An idle process loses two passes of the loop per message, microseconds.
"""

from __future__ import annotations

import asyncio
from collections import deque

PER_PASS = 16


class Turnstile:
    """Lets waiting callers through, `per_pass` per pass of the running event loop."""

    def __init__(self, per_pass: int = PER_PASS) -> None:
        self._per_pass = per_pass
        self._waiting: deque[asyncio.Future[None]] = deque()
        self._turning = False

    async def through(self) -> None:
        """Return once it is this caller's turn; callers go in the order they came."""
        loop = asyncio.get_running_loop()
        turn = loop.create_future()
        self._waiting.append(turn)
        if not self._turning:
            self._turning = True
            loop.call_soon(self._turn)
        await turn

    def _turn(self) -> None:
        let_through = self._per_pass
        while self._waiting and let_through:
            turn = self._waiting.popleft()
            if not turn.done():  # a caller cancelled while waiting is passed over
                turn.set_result(None)
                let_through -= 1
        if self._waiting:
            # Called from a callback, call_soon waits for the next pass of the loop.
            asyncio.get_running_loop().call_soon(self._turn)
        else:
            self._turning = False
