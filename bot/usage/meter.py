"""Usage metering: every answer's tokens and cost, counted per day and dimension in Redis.

Keys (`<prefix>` is ``parley:``):

    <prefix>usage:{<YYYY-MM-DD>}:<dimension>   hash   field "<id>|<column>" → count

with `dimension` one of user, channel, workspace, model; ids are "<platform>:<id>"
(the policy's keys) and model names. Columns: requests, prompt_tokens,
completion_tokens, reasoning_tokens, cached_tokens, estimated (answers whose usage was
counted offline) and cost_usd (a float). Costs are computed when an answer is recorded,
with the prices of that moment. Each hash expires `RETENTION_DAYS` after its day.

All four hashes of a day carry the same hash tag, `{<day>}`, so one script updates them
atomically in one round trip, in Redis Cluster too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from redis.exceptions import RedisError

from bot.conversation import ConversationKey
from bot.llm_types import Usage
from bot.policy import Price
from bot.store import DEFAULT_PREFIX
from bot.store.client import Client
from bot.usage.clock import DAY, Clock, day_of, utc_now
from bot.usage.cost import cost_usd

log = logging.getLogger(__name__)

RETENTION_DAYS = 90
DIMENSIONS = ("user", "channel", "workspace", "model")
COLUMNS = (
    "requests",
    "prompt_tokens",
    "completion_tokens",
    "reasoning_tokens",
    "cached_tokens",
    "cost_usd",
)
ESTIMATED = "estimated"
FIELD_SEPARATOR = "|"

_RECORD = """
local n = #KEYS
local ttl = ARGV[n + 1]
for i = 1, n do
  for j = n + 2, #ARGV, 2 do
    local field = ARGV[i] .. '|' .. ARGV[j]
    if ARGV[j] == 'cost_usd' then
      redis.call('HINCRBYFLOAT', KEYS[i], field, ARGV[j + 1])
    else
      redis.call('HINCRBY', KEYS[i], field, ARGV[j + 1])
    end
  end
  redis.call('EXPIRE', KEYS[i], ttl)
end
return n
"""


def usage_key(prefix: str, day: str, dimension: str) -> str:
    return f"{prefix}usage:{{{day}}}:{dimension}"


def dimension_ids(key: ConversationKey, author_id: str, model: str) -> dict[str, str]:
    """The id a turn is counted under in each dimension."""
    p = key.platform
    return {
        "user": f"{p}:{author_id}",
        "channel": f"{p}:{key.channel}",
        "workspace": f"{p}:{key.workspace}",
        "model": model,
    }


class UsageMeter:
    """Adds each answer's usage to the day's counters."""

    def __init__(
        self,
        redis: Client,
        prices: Callable[[], Mapping[str, Price]],
        *,
        clock: Clock = utc_now,
        prefix: str = DEFAULT_PREFIX,
    ) -> None:
        self.redis = redis
        self.clock = clock
        self._prices = prices
        self._prefix = prefix
        self._script = redis.register_script(_RECORD)

    async def record(self, key: ConversationKey, author_id: str, model: str, usage: Usage) -> None:
        """Count one answer. A Redis failure is logged, never raised: the answer stands."""
        day = day_of(self.clock())
        ids = dimension_ids(key, author_id, model)
        amounts = {
            "requests": 1,
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "reasoning_tokens": usage.reasoning_tokens,
            "cached_tokens": usage.cached_tokens,
            ESTIMATED: int(usage.estimated),
        }
        args: list[str | int | float] = [ids[d] for d in DIMENSIONS]
        args.append(int((RETENTION_DAYS + 1) * DAY.total_seconds()))
        for column, amount in amounts.items():
            if amount:
                args.extend((column, amount))
        cost = cost_usd(usage, self._prices().get(model))
        if cost:
            args.extend(("cost_usd", repr(cost)))
        keys = [usage_key(self._prefix, day, d) for d in DIMENSIONS]
        try:
            await self._script(keys=keys, args=args)
        except (RedisError, OSError) as exc:
            log.warning("could not record usage for %s: %r", key.id, exc)
