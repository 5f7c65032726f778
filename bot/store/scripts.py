"""The Lua scripts that make a turn three round trips, and the runners of a store's keys.

Every script touches only the keys of one conversation (one hash tag, so one cluster
slot) and runs atomically on the server. `KEYS` are always the conversation's
``lock``, ``conv`` and ``meta`` keys; image keys are built inside the scripts from the
conversation's image prefix, which carries the same hash tag.

An append's arguments, wherever they start (`APPEND` reads them from index ``i`` on):

    ttl, max_turns, image_prefix,
    n, turn_json * n,                     turns to RPUSH, oldest first
    m, (sha256, bytes) * m,               image bytes to SET with the TTL
    r, sha256 * r                         stored images whose TTL to refresh

Each script has a Python twin in `bot.store.memory` (same name in lower case, same ARGV,
same reply), which the embedded store runs instead: a change to a script here is a change
to its twin there. A `Runner` is where a store's keys live: `RedisRunner` sends the
scripts and commands to Redis, `bot.store.memory.MemoryRunner` runs them in process.
"""

from __future__ import annotations

from collections.abc import Sequence
from hashlib import sha1
from typing import Protocol

from redis.exceptions import NoScriptError

from bot.store import memory
from bot.store.client import Client
from bot.store.memory import Arg, Twin

# Appends turns (RPUSHX instead of RPUSH when `only_if_present`), trims, refreshes TTLs.
# Returns the index after its arguments and the list's length (0: nothing appended).
_APPEND = """
local function append(argv, i, only_if_present)
  local ttl, keep, imgp = tonumber(argv[i]), tonumber(argv[i + 1]), argv[i + 2]
  i = i + 3
  local n = tonumber(argv[i])
  local turns = {}
  for j = 1, n do turns[j] = argv[i + j] end
  i = i + n + 1
  local length = 0
  if n > 0 then
    length = redis.call(only_if_present and 'RPUSHX' or 'RPUSH', KEYS[2], unpack(turns))
  end
  if length > 0 then
    redis.call('LTRIM', KEYS[2], -keep, -1)
    redis.call('EXPIRE', KEYS[2], ttl)
    redis.call('EXPIRE', KEYS[3], ttl)
  end
  local given = {}
  local m = tonumber(argv[i])
  i = i + 1
  for j = 1, m do
    if length > 0 then redis.call('SET', imgp .. argv[i], argv[i + 1], 'EX', ttl) end
    given[argv[i]] = true
    i = i + 2
  end
  local r = tonumber(argv[i])
  i = i + 1
  for j = 1, r do
    if length > 0 then redis.call('EXPIRE', imgp .. argv[i], ttl) end
    i = i + 1
  end
  return i, length, given
end
"""

# Whether `token` holds the lock: 0 no, 1 yes, 2 yes and its user turn is stored (the
# lock's value is then the token and "+"; a replayed BEGIN must not store it twice).
_HOLDS = """
local function holds(token)
  local value = redis.call('GET', KEYS[1])
  if value == token then return 1 end
  if value == token .. '+' then return 2 end
  return 0
end
"""

# BEGIN: take the lock (or keep it, when this token holds it already), then append the
# user turn and read what the request sends. ARGV: token, lease_ms, need_seed ("1": stop
# after locking if the conversation has no list yet), budget, then an append.
# Returns {0, lock_pttl} when another holder has the lock, {2} when a seed is needed,
# else {1, length, model or "", newest kept turns (newest first), {sha, bytes, ...}}.
# redis-py replays a command whose connection broke before the reply came; a replay
# finds the lock marked and only reads.
_BEGIN = (
    _APPEND
    + _HOLDS
    + """
local token, lease, budget = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[4])
local held = holds(token)
if held == 0 then
  if not redis.call('SET', KEYS[1], token, 'NX', 'PX', lease) then
    return {0, redis.call('PTTL', KEYS[1])}
  end
else
  redis.call('PEXPIRE', KEYS[1], lease)
end
local length, given
if held == 2 then
  length, given = redis.call('LLEN', KEYS[2]), {}
else
  if ARGV[3] == '1' and redis.call('EXISTS', KEYS[2]) == 0 then
    return {2}
  end
  local _
  _, length, given = append(ARGV, 5, false)
  redis.call('SET', KEYS[1], token .. '+', 'PX', lease)
end
local all = redis.call('LRANGE', KEYS[2], 0, -1)
local imgp, ttl = ARGV[7], tonumber(ARGV[5])
local kept, used, images, seen = {}, 0, {}, {}
for j = #all, 1, -1 do
  local turn = cjson.decode(all[j])
  if #kept > 0 and used + turn.k > budget then break end
  used = used + turn.k
  kept[#kept + 1] = all[j]
  for _, part in ipairs(turn.p) do
    local sha = part.img
    if sha and not given[sha] and not seen[sha] then
      seen[sha] = true
      local data = redis.call('GET', imgp .. sha)
      if data then
        redis.call('EXPIRE', imgp .. sha, ttl)
        images[#images + 1] = sha
        images[#images + 1] = data
      end
    end
  end
end
return {1, length, redis.call('HGET', KEYS[3], 'model') or '', kept, images}
"""
)

# FINISH: if this token still holds the lock, append the answer to the conversation if
# that still exists (a /reset or an expiry during the answer must not leave a history
# that starts with it) and release the lock. A lock lost meanwhile may have let another
# turn in: the answer is then not stored, rather than stored out of order (and a
# replayed FINISH stores nothing twice). ARGV: token, then an append.
# Returns 1 if the lock was held until now, else 0.
_FINISH = (
    _APPEND
    + _HOLDS
    + """
if holds(ARGV[1]) == 0 then
  return 0
end
append(ARGV, 2, true)
redis.call('DEL', KEYS[1])
return 1
"""
)

# EXTEND: append turns. ARGV: only_if_absent ("1": a seed from the platform thread, so
# only if the conversation has no list yet; a replay is then a no-op), then an append.
# Returns the list's length, 0 if nothing was appended.
_EXTEND = (
    _APPEND
    + """
if ARGV[1] == '1' and redis.call('EXISTS', KEYS[2]) == 1 then
  return 0
end
local _, length = append(ARGV, 2, false)
return length
"""
)

# REPLACE: swap the newest turn for another while this token holds the lock and the
# newest turn is still the one expected (nothing appended since, no reset).
# ARGV: token, old turn JSON, new turn JSON. Returns 1 if replaced, else 0.
_REPLACE = (
    _HOLDS
    + """
if holds(ARGV[1]) == 0 or redis.call('LINDEX', KEYS[2], -1) ~= ARGV[2] then
  return 0
end
redis.call('LSET', KEYS[2], -1, ARGV[3])
return 1
"""
)

# RENEW: reset the lock's lease if this token still holds it. ARGV: token, lease_ms.
_RENEW = (
    _HOLDS
    + """
if holds(ARGV[1]) > 0 then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
)


class Script:
    """One script, run in one round trip on Redis, or as its `twin` in process.

    Sent whole (EVAL, which also caches it on the server) until a first run has
    succeeded, so a burst at start-up does not pay two trips each; by its SHA1 after
    that, and whole again on a server that lacks it (a restart, a failover, another
    node), which caches it there.
    """

    def __init__(self, source: str, twin: Twin) -> None:
        self.source = source
        self.sha = sha1(source.encode(), usedforsecurity=False).hexdigest()
        self.twin = twin
        self._cached = False

    async def __call__(self, client: Client, keys: Sequence[str], args: Sequence[Arg]) -> object:
        if self._cached:
            try:
                return await client.evalsha(self.sha, len(keys), *keys, *args)
            except NoScriptError:
                pass
        result = await client.eval(self.source, len(keys), *keys, *args)
        self._cached = True
        return result


BEGIN = Script(_BEGIN, memory.begin)
FINISH = Script(_FINISH, memory.finish)
EXTEND = Script(_EXTEND, memory.extend)
REPLACE = Script(_REPLACE, memory.replace)
RENEW = Script(_RENEW, memory.renew)


class Runner(Protocol):
    """Runs a store's scripts and its few direct commands on the keys of its conversations.

    The replies are the same whichever runs them, except that strings may come back as
    `bytes` from Redis and as `str` from memory.
    """

    async def run(self, script: Script, keys: Sequence[str], args: Sequence[Arg]) -> object:
        """The script's reply."""
        ...

    async def claim(self, key: str, ttl: int) -> bool:
        """SET `key` NX EX `ttl`: whether this call set it."""
        ...

    async def exists(self, key: str) -> bool: ...

    async def set_field(self, key: str, field: str, value: str, ttl: int) -> None:
        """HSET `key` `field` `value`, then EXPIRE `key` `ttl`."""
        ...

    async def get_field(self, key: str, field: str) -> str | None: ...

    async def delete(self, *keys: str) -> None: ...


class RedisRunner:
    """A `Runner` on Redis, through `client`."""

    def __init__(self, client: Client) -> None:
        self._client = client

    async def run(self, script: Script, keys: Sequence[str], args: Sequence[Arg]) -> object:
        return await script(self._client, keys, args)

    async def claim(self, key: str, ttl: int) -> bool:
        return bool(await self._client.set(key, 1, nx=True, ex=ttl))

    async def exists(self, key: str) -> bool:
        return bool(await self._client.exists(key))

    async def set_field(self, key: str, field: str, value: str, ttl: int) -> None:
        # One key, so a plain pipeline: a cluster client takes no MULTI.
        pipe = self._client.pipeline(transaction=False)
        pipe.hset(key, field, value)
        pipe.expire(key, ttl)
        await pipe.execute()

    async def get_field(self, key: str, field: str) -> str | None:
        value = await self._client.hget(key, field)
        return value.decode() if isinstance(value, bytes) else value

    async def delete(self, *keys: str) -> None:
        await self._client.delete(*keys)
