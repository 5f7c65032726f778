"""Claims this process already asked Redis about, so a twin delivery costs no round trip.

Slack sends one mention as two events (`app_mention` and its `message` twin), usually to
the same process and within milliseconds. The first copy claims the event in Redis; a
copy that arrives while that claim is on its way waits for its answer, and one that
arrives later finds it here. Either way the copy is told the event is taken, without a
second SET NX. Only a settled claim is remembered: a claim that failed (Redis down) is
forgotten, so the next copy asks Redis again.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

MAX_REMEMBERED = 10_000  # the oldest are forgotten first: memory stays bounded


class ClaimMemo:
    def __init__(self, *, size: int = MAX_REMEMBERED) -> None:
        self._size = size
        self._taken: OrderedDict[str, float] = OrderedDict()  # event id -> expiry
        self._asking: dict[str, asyncio.Future[bool]] = {}

    async def claim(self, event_id: str, ttl: float, ask: Callable[[], Awaitable[bool]]) -> bool:
        """`ask()`'s answer for the first copy of `event_id` within `ttl`; False for the rest."""
        expires = self._taken.get(event_id)
        if expires is not None:
            if expires > time.monotonic():
                return False
            del self._taken[event_id]
        pending = self._asking.get(event_id)
        if pending is not None:
            await asyncio.shield(pending)  # raises as the first copy's claim did
            return False
        pending = asyncio.get_running_loop().create_future()
        self._asking[event_id] = pending
        try:
            first = await ask()
        except Exception as exc:
            pending.set_exception(exc)
            pending.exception()  # marked retrieved: no copy may be waiting for it
            raise
        except BaseException:
            pending.cancel()
            raise
        finally:
            del self._asking[event_id]
        pending.set_result(first)
        self._remember(event_id, ttl)
        return first

    def _remember(self, event_id: str, ttl: float) -> None:
        self._taken[event_id] = time.monotonic() + ttl
        self._taken.move_to_end(event_id)
        while len(self._taken) > self._size:
            self._taken.popitem(last=False)
