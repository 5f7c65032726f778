"""The embedded store's conversation keyspace, looked at as a test looks at a Redis."""

from __future__ import annotations

from fnmatch import fnmatchcase

from bot.store.memory import Keyspace


def _bytes(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else value


class MemoryKeys:
    """The redis-py commands tests send to inspect or change keys, on a `Keyspace`.

    Each command is one operation of its own (expired keys are dropped first), and the
    replies are redis-py's: strings as bytes.
    """

    def __init__(self, keyspace: Keyspace) -> None:
        self._space = keyspace

    async def get(self, key: str) -> bytes | None:
        self._space.tick()
        value = self._space.get(key)
        return None if value is None else _bytes(value)

    async def hget(self, key: str, field: str) -> bytes | None:
        self._space.tick()
        value = self._space.hget(key, field)
        return None if value is None else _bytes(value)

    async def lrange(self, key: str, start: int, stop: int) -> list[bytes]:
        assert (start, stop) == (0, -1), "only whole lists are read"
        self._space.tick()
        return [_bytes(turn.raw) for turn in self._space.lrange(key)]

    async def llen(self, key: str) -> int:
        self._space.tick()
        return self._space.llen(key)

    async def exists(self, *keys: str) -> int:
        self._space.tick()
        return sum(self._space.exists(key) for key in keys)

    async def keys(self, pattern: str) -> list[bytes]:
        self._space.tick()
        return [key.encode() for key in self._space if fnmatchcase(key, pattern)]

    async def delete(self, *keys: str) -> int:
        self._space.tick()
        return self._space.delete(*keys)

    async def expire(self, key: str, seconds: int) -> bool:
        self._space.tick()
        return bool(self._space.expire(key, seconds))

    async def pttl(self, key: str) -> int:
        self._space.tick()
        return self._space.pttl(key)

    async def ttl(self, key: str) -> int:
        left = await self.pttl(key)
        return left if left < 0 else (left + 500) // 1000  # rounded, as Redis's TTL
