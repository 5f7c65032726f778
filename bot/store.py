"""Conversation history, images, locks and event dedup, on Redis.

One code path serves both back ends: a real Redis when `REDIS_URL` is set, otherwise an
embedded in-process fakeredis server (history then lives only as long as the process).

Keys (`prefix` defaults to ``parley:``; `<conv>` is `ConversationKey.id`):

    <prefix>conv:<conv>     list    one JSON `Turn` per element, oldest first; a person's
                                    turn carries their user id (``i``) and the ids they
                                    mentioned (``m``), so the history read for a turn also
                                    says who is in the thread (`History.people`, the
                                    people an answer may mention) and which links people
                                    wrote (`History.links`, the ones it may preview),
                                    without another round trip
    <prefix>meta:<conv>     hash    per-conversation settings (``model``)
    <prefix>img:<sha256>    string  image bytes, stored once per content hash
    <prefix>lock:<conv>     string  the conversation lock's token
    <prefix>event:<id>      string  a platform event already claimed

TTL: a conversation's list and hash expire `Limits.history_ttl` seconds after its last
turn (every turn refreshes both). An image key has the same TTL, refreshed whenever a
turn referring to it is stored and whenever it is read for a request; turns hold only an
`ImageRef`, never the bytes. A list keeps at most `Limits.history_turns` turns (older
ones could never be read again); appending is RPUSH plus an LTRIM of one element, O(1).

Round trips (one command or one pipeline execute each) for a user turn and its answer:

    1. add_user_turn: MULTI, RPUSH, LTRIM, EXPIRE conv, EXPIRE meta, SET img EX (this
       turn's images), LRANGE of the newest turns, HGETALL meta, EXEC
    2. add_user_turn: GETEX img EX for older images still in the budget (skipped if none)
    3. add_turn: MULTI, RPUSH, LTRIM, EXPIRE conv, EXPIRE meta, EXPIRE img (refs), EXEC

The lock costs one more to take (SET NX PX), one to release (EVALSHA) and one per
renewal (every `timeout / 3` seconds while held).

Every failure to reach Redis raises `StoreUnavailable`; redis-py reconnects by itself on
the next command once Redis is back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from dataclasses import dataclass

import redis.asyncio as aioredis
from fakeredis import FakeAsyncRedis, FakeServer
from redis.asyncio import BlockingConnectionPool
from redis.asyncio.lock import Lock
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import LockNotOwnedError, RedisError

from bot.conversation import ConversationKey, Turn, links_in, people_in
from bot.errors import BotBusy, StoreUnavailable
from bot.settings import Limits, Settings

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "parley:"
LOCK_TIMEOUT = 60.0  # seconds a crashed holder keeps a conversation locked
LOCK_WAIT = 300.0  # a second message waits this long for the answer before it
PING_TIMEOUT = 1.0

# A dead Redis must fail a request within seconds, not hang it: short connect and socket
# timeouts, and one quick retry, only on connection errors, which is what reconnects a
# pooled connection after a Redis restart. A timed-out write is not retried: it may have
# been applied, and replaying an RPUSH would duplicate a turn.
CONNECT_TIMEOUT = 2.0
SOCKET_TIMEOUT = 5.0
HEALTH_CHECK_INTERVAL = 30
# redis-py's default pool refuses a 101st concurrent command ("Too many connections"); a
# burst of answers must queue for a connection instead, for a bounded time.
MAX_CONNECTIONS = 512
POOL_WAIT = 10.0


@dataclass(frozen=True, slots=True)
class History:
    """What a request sends: the newest turns within the budget and their images."""

    turns: list[Turn]  # oldest first, ending with the turn just added
    images: dict[str, bytes]  # sha256 -> bytes for the image refs in `turns` still stored
    model: str | None  # the conversation's model override, if one was set
    trimmed: bool  # older turns exist that did not fit
    # Read from every stored turn, not only those within the budget:
    people: frozenset[str] = frozenset()  # ids who wrote or were mentioned by a person
    links: frozenset[str] = frozenset()  # URLs people wrote


class ConversationStore:
    """Conversation history and coordination, shared by every process on one Redis."""

    def __init__(
        self, client: aioredis.Redis, limits: Limits, prefix: str = DEFAULT_PREFIX
    ) -> None:
        self._redis = client
        self._limits = limits
        self._prefix = prefix

    @classmethod
    def from_settings(cls, settings: Settings) -> ConversationStore:
        """A store on `REDIS_URL`, or on an embedded in-process server when it is unset."""
        if settings.redis_url:
            pool = BlockingConnectionPool.from_url(
                settings.redis_url,
                max_connections=MAX_CONNECTIONS,
                timeout=POOL_WAIT,
                socket_connect_timeout=CONNECT_TIMEOUT,
                socket_timeout=SOCKET_TIMEOUT,
                health_check_interval=HEALTH_CHECK_INTERVAL,
                retry=Retry(
                    ExponentialWithJitterBackoff(base=0.05, cap=0.5),
                    retries=1,
                    supported_errors=(RedisConnectionError,),
                ),
                client_name="parley",
            )
            client = aioredis.Redis.from_pool(pool)
        else:
            log.warning(
                "REDIS_URL is not set: using an in-process store; conversation history is "
                "not kept across restarts or shared between replicas"
            )
            client = FakeAsyncRedis(server=FakeServer())
        return cls(client, settings.limits())

    @property
    def redis(self) -> aioredis.Redis:
        """The client, so other Redis-backed parts (usage, quotas) share its pool."""
        return self._redis

    async def add_user_turn(
        self,
        key: ConversationKey,
        turn: Turn,
        images: Mapping[str, bytes],
        budget_tokens: int,
    ) -> History:
        """Append a user turn (with the bytes of its images) and read the history to send.

        `budget_tokens` is what is left of the context budget after the system prompt; the
        newest turns that fit are kept, and always at least `turn` itself.
        """
        with self._unavailable("add_user_turn", key):
            pipe = self._redis.pipeline(transaction=True)
            self._queue_append(pipe, key, [turn], images)
            pipe.lrange(self._conv(key), -self._limits.history_turns, -1)
            pipe.hgetall(self._meta(key))
            results = await pipe.execute()
            length, raw_turns, meta = results[0], results[-2], results[-1]

            stored = [Turn.from_json(raw) for raw in raw_turns]
            turns = _newest_within(stored, budget_tokens)
            hashes = [h for t in turns for h in t.image_hashes]
            found = {h: images[h] for h in hashes if h in images}
            found.update(await self._read_images([h for h in hashes if h not in images]))
        return History(
            turns=turns,
            images=found,
            model=_text(meta.get(b"model")),
            trimmed=len(turns) < length,
            people=people_in(stored),
            links=links_in(stored),
        )

    async def add_turn(self, key: ConversationKey, turn: Turn) -> None:
        """Append a turn whose images, if any, are already stored (the assistant's answer)."""
        await self.extend(key, [turn])

    async def extend(
        self,
        key: ConversationKey,
        turns: Sequence[Turn],
        images: Mapping[str, bytes] | None = None,
    ) -> None:
        """Append several turns in one round trip, e.g. to seed from a platform thread."""
        if not turns:
            return
        with self._unavailable("extend", key):
            pipe = self._redis.pipeline(transaction=True)
            self._queue_append(pipe, key, turns, images or {})
            await pipe.execute()

    async def exists(self, key: ConversationKey) -> bool:
        """Whether the conversation has history, i.e. the bot has taken part in it."""
        with self._unavailable("exists", key):
            return bool(await self._redis.exists(self._conv(key)))

    async def set_model(self, key: ConversationKey, model: str) -> None:
        with self._unavailable("set_model", key):
            pipe = self._redis.pipeline(transaction=True)
            pipe.hset(self._meta(key), "model", model)
            pipe.expire(self._meta(key), self._limits.history_ttl)
            await pipe.execute()

    async def get_model(self, key: ConversationKey) -> str | None:
        with self._unavailable("get_model", key):
            return _text(await self._redis.hget(self._meta(key), "model"))

    async def reset(self, key: ConversationKey) -> None:
        """Forget the conversation's history and settings. Shared images expire on their own."""
        with self._unavailable("reset", key):
            await self._redis.delete(self._conv(key), self._meta(key))

    def lock(
        self,
        key: ConversationKey,
        *,
        timeout: float = LOCK_TIMEOUT,
        blocking_timeout: float = LOCK_WAIT,
    ) -> AbstractAsyncContextManager[None]:
        """Hold the conversation's lock, across processes, for the body of an `async with`.

        While held, the lock is renewed every `timeout / 3` seconds, so a long answer keeps
        it and a crashed process loses it after `timeout`. Raises `BotBusy` when another
        holder keeps it longer than `blocking_timeout`. It is released on exit, also when
        the body raises or is cancelled.
        """
        return self._hold(key, lease=timeout, wait=blocking_timeout)

    @asynccontextmanager
    async def _hold(
        self, key: ConversationKey, *, lease: float, wait: float
    ) -> AsyncIterator[None]:
        # A fresh Lock per acquisition, token kept on the object: redis-py's default keeps
        # it thread-local, and every task of the event loop shares one thread.
        lock = Lock(
            self._redis,
            f"{self._prefix}lock:{key.id}",
            timeout=lease,
            blocking_timeout=wait,
            thread_local=False,
        )
        with self._unavailable("lock", key):
            acquired = await lock.acquire()
        if not acquired:
            log.info("conversation %s still locked after %.1fs", key.id, wait)
            raise BotBusy(f"conversation {key.id} is locked")
        renewer = asyncio.create_task(_renew(lock, key, lease / 3))
        try:
            yield
        finally:
            renewer.cancel()
            # Shielded so that a second cancellation cannot leave the lock held.
            await asyncio.shield(_release(lock, key, renewer))

    async def claim_event(self, event_id: str, ttl: int = 3600) -> bool:
        """True the first time `event_id` is claimed by any process within `ttl` seconds."""
        with self._unavailable("claim_event"):
            return bool(
                await self._redis.set(f"{self._prefix}event:{event_id}", 1, nx=True, ex=ttl)
            )

    async def ping(self) -> bool:
        """Whether Redis answers within a second. Never raises."""
        try:
            async with asyncio.timeout(PING_TIMEOUT):
                return bool(await self._redis.ping())
        except (RedisError, OSError) as exc:
            log.warning("Redis ping failed: %r", exc)
            return False

    async def aclose(self) -> None:
        await self._redis.aclose()

    def _conv(self, key: ConversationKey) -> str:
        return f"{self._prefix}conv:{key.id}"

    def _meta(self, key: ConversationKey) -> str:
        return f"{self._prefix}meta:{key.id}"

    def _image(self, sha256: str) -> str:
        return f"{self._prefix}img:{sha256}"

    def _queue_append(
        self,
        pipe: aioredis.client.Pipeline,
        key: ConversationKey,
        turns: Sequence[Turn],
        images: Mapping[str, bytes],
    ) -> None:
        """Queue the append of `turns`, the RPUSH first so its result (the length) is [0]."""
        ttl = self._limits.history_ttl
        conv = self._conv(key)
        pipe.rpush(conv, *(t.to_json() for t in turns))
        pipe.ltrim(conv, -self._limits.history_turns, -1)
        pipe.expire(conv, ttl)
        pipe.expire(self._meta(key), ttl)
        for sha256 in dict.fromkeys(h for t in turns for h in t.image_hashes):
            if sha256 in images:
                pipe.set(self._image(sha256), images[sha256], ex=ttl)
            else:
                pipe.expire(self._image(sha256), ttl)

    async def _read_images(self, hashes: Iterable[str]) -> dict[str, bytes]:
        """The stored bytes of `hashes` (expired ones left out), their TTL refreshed."""
        wanted = list(dict.fromkeys(hashes))
        if not wanted:
            return {}
        pipe = self._redis.pipeline(transaction=False)
        for sha256 in wanted:
            pipe.getex(self._image(sha256), ex=self._limits.history_ttl)
        found = await pipe.execute()
        return {h: data for h, data in zip(wanted, found, strict=True) if data is not None}

    @contextmanager
    def _unavailable(self, operation: str, key: ConversationKey | None = None) -> Iterator[None]:
        """Turn any Redis failure into `StoreUnavailable`, logged with what was being done."""
        try:
            yield
        except (RedisError, OSError) as exc:
            where = f" for {key.id}" if key else ""
            log.warning("Redis %s failed%s: %s: %s", operation, where, type(exc).__name__, exc)
            raise StoreUnavailable(f"Redis {operation} failed: {exc}") from exc

    # LINDEX and LSET in one step, so the check and the write see the same list.
    _REPLACE_LAST_SCRIPT = """
    if redis.call('LINDEX', KEYS[1], -1) ~= ARGV[1] then return 0 end
    redis.call('LSET', KEYS[1], -1, ARGV[2])
    return 1
    """

    async def replace_last_turn(self, key: ConversationKey, old: Turn, new: Turn) -> bool:
        """Replace the conversation's newest turn, if it is still `old`, with `new`.

        For the user turn just stored when the model refuses its content (`bot.rejected`):
        the caller holds the conversation's lock, and the check makes sure nothing else
        (a turn appended since, a reset) is overwritten. The TTLs stay as they are; the
        images `new` no longer refers to expire with them. One round trip (EVAL).
        True when the turn was replaced.
        """
        with self._unavailable("replace_last_turn", key):
            replaced = await self._redis.eval(
                self._REPLACE_LAST_SCRIPT, 1, self._conv(key), old.to_json(), new.to_json()
            )
        return bool(replaced)


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


def _newest_within(turns: list[Turn], budget_tokens: int) -> list[Turn]:
    """The longest run of newest turns whose tokens fit the budget, at least one."""
    kept = used = 0
    for turn in reversed(turns):
        if kept and used + turn.tokens > budget_tokens:
            break
        used += turn.tokens
        kept += 1
    return turns[len(turns) - kept :]


async def _renew(lock: Lock, key: ConversationKey, interval: float) -> None:
    """Reset the lock's TTL every `interval` seconds until cancelled or the lock is lost."""
    while True:
        await asyncio.sleep(interval)
        try:
            await lock.reacquire()
        except LockNotOwnedError:
            log.error("lost the lock on %s: it expired before it was renewed", key.id)
            return
        except (RedisError, OSError) as exc:
            log.warning("could not renew the lock on %s: %r", key.id, exc)


async def _release(lock: Lock, key: ConversationKey, renewer: asyncio.Task[None]) -> None:
    await asyncio.wait({renewer})
    try:
        await lock.release()
    except LockNotOwnedError:
        log.warning("the lock on %s had expired before it was released", key.id)
    except (RedisError, OSError) as exc:
        log.warning("could not release the lock on %s (it expires by itself): %r", key.id, exc)
