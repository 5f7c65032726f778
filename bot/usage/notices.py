"""Which people were already told, privately, that the policy doesn't let them in.

A refused person is told once per place and day, not for every message they send: one
`SET NX` with a day's TTL per (place, user), shared by every replica.
"""

from __future__ import annotations

from bot.policy import Place
from bot.store import DEFAULT_PREFIX
from bot.store.client import Client
from bot.usage.clock import DAY
from bot.usage.unavailable import unavailable

NOTICE_TTL = int(DAY.total_seconds())


class DenialNotices:
    def __init__(self, redis: Client, *, prefix: str = DEFAULT_PREFIX) -> None:
        self._redis = redis
        self._prefix = prefix

    async def first(self, place: Place) -> bool:
        """True when `place.user` has not been told at `place` within the last day."""
        where = place.channel if not place.is_dm else "dm"
        key = f"{self._prefix}denied:{place.platform}:{place.workspace}:{where}:{place.user}"
        with unavailable("denial notice"):
            return bool(await self._redis.set(key, 1, nx=True, ex=NOTICE_TTL))
