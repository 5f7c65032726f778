"""Daily token caps that hold across replicas: reserve before a turn, settle after it.

`QuotaLedger.reserve` adds a turn's estimated tokens to the counters of every capped
scope (user, channel, workspace) in one Lua script, so the check and the increment are
one atomic step: two replicas can't both pass the last token. A scope already at its cap
refuses (`QuotaExceeded`); one below it admits the turn, so a cap is exceeded by at most
one turn's reservation. `Reservation.settle` then replaces the estimate with the real
usage, and `release` gives it back when no answer was written.

Keys, one counter per scope and quota day (which starts at `reset_hour_utc`):

    <prefix>quota:{<window start day>}:<HH>:<scope>:<platform>:<id>   string   tokens

Why one hash tag per quota day: the script touches all three counters of a turn, and in
Redis Cluster a script's keys must live in one slot. Tagging by day puts every counter
of that day in one slot, so one script call (one round trip) checks and reserves all
caps together. The alternative, one call per scope with a rollback on refusal, costs
three round trips per turn and can briefly over-reserve. A day's slot is one small
EVALSHA per turn, far below what one Redis shard serves, and it moves every day.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from bot.errors import QUOTA_OWNERS, QuotaExceeded
from bot.llm.types import Usage
from bot.policy import Place, PolicySource, QuotaRule
from bot.store import DEFAULT_PREFIX
from bot.store.client import Client
from bot.usage.clock import DAY, Clock, quota_window, utc_now
from bot.usage.unavailable import unavailable

SCOPES = ("user", "channel", "workspace")
KEY_TTL = int(2 * DAY.total_seconds())

# KEYS: counters; ARGV[1]: tokens to reserve, ARGV[2]: TTL, ARGV[3..]: caps (same order).
# Returns {0, index, used} when counter `index` is at its cap, else {1, used before...}.
_RESERVE = """
local amount = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  local used = tonumber(redis.call('GET', key) or '0')
  if used >= tonumber(ARGV[i + 2]) then
    return {0, i, used}
  end
end
local result = {1}
for i, key in ipairs(KEYS) do
  result[i + 1] = redis.call('INCRBY', key, amount) - amount
  redis.call('EXPIRE', key, ARGV[2])
end
return result
"""

# KEYS: counters; ARGV[1]: tokens to add (negative gives back). Never below zero.
_SETTLE = """
for _, key in ipairs(KEYS) do
  if redis.call('INCRBY', key, ARGV[1]) < 0 then
    redis.call('SET', key, 0, 'KEEPTTL')
  end
end
return #KEYS
"""


def turn_tokens(usage: Usage) -> int:
    """What a turn costs against a cap: every token sent and written."""
    return usage.prompt_tokens + usage.completion_tokens


@dataclass(frozen=True, slots=True)
class _Cap:
    scope: str
    key: str
    limit: int


@dataclass(slots=True)
class Reservation:
    """Tokens held against the caps for one turn, until `settle` or `release`.

    `model` is the cheaper model to answer with when a cap is nearly used (else None),
    and `note` tells the user so.
    """

    amount: int = 0
    model: str | None = None
    note: str | None = None
    _keys: list[str] = field(default_factory=list)
    _ledger: QuotaLedger | None = None
    _open: bool = True

    async def settle(self, usage: Usage) -> None:
        """Replace the estimate with the turn's real usage. Only the first call counts."""
        if not self._open:
            return
        self._open = False
        if self._ledger is not None and self._keys:
            await self._ledger.adjust(self._keys, turn_tokens(usage) - self.amount)

    async def release(self) -> None:
        """Give the reservation back: the turn made no model call."""
        await self.settle(Usage())


class QuotaLedger:
    """Reserves turns against the policy's daily caps, shared by every replica."""

    def __init__(
        self,
        redis: Client,
        policy: PolicySource,
        *,
        clock: Clock = utc_now,
        prefix: str = DEFAULT_PREFIX,
    ) -> None:
        self._redis = redis
        self._policy = policy
        self._clock = clock
        self._prefix = prefix
        self._reserve = redis.register_script(_RESERVE)
        self._settle = redis.register_script(_SETTLE)

    def _caps(self, place: Place, rule: QuotaRule, now: datetime) -> list[_Cap]:
        start, _ = quota_window(now, rule.reset_hour_utc)
        tag = f"{self._prefix}quota:{{{start.date().isoformat()}}}:{start:%H}"
        limits = {"user": rule.user, "channel": rule.channel, "workspace": rule.workspace}
        return [
            _Cap(scope, f"{tag}:{scope}:{place.scoped(scope)}", limits[scope])
            for scope in SCOPES
            if limits[scope] and getattr(place, scope)
        ]

    async def reserve(self, place: Place, estimate: int) -> Reservation:
        """Hold `estimate` tokens for a turn at `place`, or raise `QuotaExceeded`."""
        rule = self._policy.effective(place).quota
        now = self._clock()
        caps = self._caps(place, rule, now) if rule.capped else []
        if not caps:
            return Reservation()
        keys = [cap.key for cap in caps]
        amount = max(estimate, 1)
        with unavailable("quota reserve"):
            result = await self._reserve(
                keys=keys, args=[amount, KEY_TTL, *(cap.limit for cap in caps)]
            )
        if not result[0]:
            cap = caps[int(result[1]) - 1]
            _, resets_at = quota_window(now, rule.reset_hour_utc)
            raise QuotaExceeded(cap.scope, int(result[2]), cap.limit, resets_at, now)
        reservation = Reservation(amount=amount, _keys=keys, _ledger=self)
        if rule.downgrade_model:
            used = zip(result[1:], caps, strict=True)
            fraction, fullest = max(
                ((int(before) / cap.limit, cap) for before, cap in used), key=lambda p: p[0]
            )
            if fraction >= rule.downgrade_at:
                reservation.model = rule.downgrade_model
                reservation.note = _downgrade_note(fullest.scope, fraction, rule.downgrade_model)
        return reservation

    async def headroom(self, place: Place) -> list[tuple[str, int, int]]:
        """(scope, used, cap) for each capped scope at `place` in the current quota day."""
        rule = self._policy.effective(place).quota
        caps = self._caps(place, rule, self._clock()) if rule.capped else []
        if not caps:
            return []
        with unavailable("quota read"):
            used = await self._redis.mget([cap.key for cap in caps])
        return [(cap.scope, int(u or 0), cap.limit) for cap, u in zip(caps, used, strict=True)]

    async def adjust(self, keys: list[str], delta: int) -> None:
        if not delta:
            return
        with unavailable("quota settle"):
            await self._settle(keys=keys, args=[delta])


def _downgrade_note(scope: str, fraction: float, model: str) -> str:
    return f"Answered by {model}: {QUOTA_OWNERS[scope]} daily token limit is {fraction:.0%} used."
