"""Claims kept in this process, for when Redis can't take them.

During a Redis outage every copy of a message (Slack's mention and its `message` twin,
a redelivery) fails to claim in Redis; the first copy this process sees still gets the
"temporarily unavailable" notice and the others are dropped, so a person reads it once.
"""

from __future__ import annotations

import time
from collections import OrderedDict

CLAIM_TTL = 3600.0  # seconds, as long as a claim lives in Redis
MAX_CLAIMS = 10_000  # the oldest are forgotten first: memory stays bounded in a long outage


class LocalClaims:
    def __init__(self, *, ttl: float = CLAIM_TTL, size: int = MAX_CLAIMS) -> None:
        self._ttl = ttl
        self._size = size
        self._seen: OrderedDict[str, float] = OrderedDict()

    def claim(self, event_id: str) -> bool:
        """True the first time this process sees `event_id` within the TTL."""
        now = time.monotonic()
        expires = self._seen.get(event_id)
        if expires is not None and expires > now:
            return False
        self._seen[event_id] = now + self._ttl
        self._seen.move_to_end(event_id)
        while len(self._seen) > self._size:
            self._seen.popitem(last=False)
        return True
