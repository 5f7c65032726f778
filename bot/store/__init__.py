"""Conversation history, images, locks and event dedup, on Redis.

One code path serves every back end (`bot.store.client`): one Redis node, a Redis
Cluster, a Sentinel-watched master (`REDIS_MODE`), or, without `REDIS_URL`, an embedded
in-process server (history then lives only as long as the process). The store sends its
scripts and commands through a `Runner` (`bot.store.scripts`): to Redis, or, embedded, to
their Python twins on the keys below held in plain memory (`bot.store.memory`), while
every other part uses the embedded client's fakeredis.

Keys (`prefix` defaults to ``parley:``; `<conv>` is `ConversationKey.id`):

    <prefix>conv:{<conv>}             list    one JSON `Turn` per element, oldest first; a
                                              person's turn carries their user id (``i``)
                                              and the ids they mentioned (``m``), so the
                                              history read says who is in the thread
                                              (`History.people`) and which links people
                                              wrote (`History.links`)
    <prefix>meta:{<conv>}             hash    per-conversation settings (``model``)
    <prefix>lock:{<conv>}             string  the lock holder's token (+ "+" once its
                                              user turn is stored)
    <prefix>img:{<conv>}:<sha256>     string  image bytes, once per content per conversation
    <prefix>event:<id>                string  a platform event already claimed

The braces are a cluster hash tag: every key of one conversation is in one slot, so
each turn is one atomic script on one node, in a cluster as on a single Redis. Images
are tagged per conversation too, rather than shared by content across conversations:
then the script that stores a turn also stores its images and reads back the older
ones the request needs, and a turn stays at three round trips. The cost is a second
copy when the same image is shown in two threads, which is rare; within a thread an
image is stored once however often it is shown. A conversation id containing ``}``
still tags all its keys alike (the tag ends at the first ``}``).

TTL: a conversation's list and hash expire `Limits.history_ttl` seconds after its last
turn (every turn refreshes both). An image key has the same TTL, refreshed whenever a
turn referring to it is stored and whenever it is read for a request; turns hold only an
`ImageRef`, never the bytes. A list keeps at most `Limits.history_turns` turns (older
ones could never be read again).

Round trips for one message and its answer (one command or one script each):

    1. claim_event    SET event NX EX (the first delivery of the message to this process
                      claims it; a twin or redelivery to the same process learns from the
                      first that it is taken, with no round trip: `bot.store.claims`)
    2. turn (enter)   script: take the lock (SET NX PX with a random token), RPUSH the
                      user turn, LTRIM, EXPIRE conv and meta, SET this turn's images,
                      read the newest turns within the token budget, GET+EXPIRE the
                      older images they show, HGET the model
    3. finish         script: if this token still holds the lock, RPUSHX the answer,
                      LTRIM, EXPIRE, and release the lock

Each script is safe to replay (redis-py resends a command whose connection broke
before its reply): a replayed step 2 finds its turn stored and only reads, a replayed
step 3 finds the lock released and stores nothing. A holder that lost its lock (it
stalled past the lease) does not store its answer, which could otherwise land after
the next holder's turn.

While another holder has the lock, step 2 is retried with backoff for up to
`blocking_timeout` seconds (then `BotBusy`). A long answer renews the lease every
`timeout / 3` seconds (one round trip each). The first message in a thread the store
has no list for, when the platform can give the thread's earlier messages (the seed),
costs two more: the locked script stops before appending, the seed is appended, and
the script runs again under the same token, so the seed always lies before the turn.
Scripts are sent whole until one has run, then by SHA1; a server that lost them (a
restart, a failover) costs one more trip, once per script.

Every failure to reach Redis raises `StoreUnavailable`; redis-py reconnects by itself on
the next command once Redis is back.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError

from bot.conversation import ConversationKey, SeedLoader, Turn, links_in, people_in
from bot.errors import BotBusy, StoreUnavailable
from bot.settings import Limits, Settings
from bot.store import scripts
from bot.store.claims import ClaimMemo
from bot.store.client import Client, EmbeddedRedis, connect
from bot.store.memory import MemoryRunner

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "parley:"
LOCK_TIMEOUT = 60.0  # seconds a crashed holder keeps a conversation locked
LOCK_WAIT = 300.0  # a second message waits this long for the answer before it
PING_TIMEOUT = 1.0
# A waiting message asks again after 10 ms, doubling up to a quarter second.
RETRY_FIRST, RETRY_MAX = 0.01, 0.25

__all__ = ["LOCK_TIMEOUT", "LOCK_WAIT", "ConversationStore", "HeldTurn", "History"]


@dataclass(frozen=True, slots=True)
class History:
    """What a request sends: the newest turns within the budget and their images."""

    turns: list[Turn]  # oldest first, ending with the turn just added
    images: dict[str, bytes]  # sha256 -> bytes for the image refs in `turns` still stored
    model: str | None  # the conversation's model override, if one was set
    trimmed: bool  # older turns exist that did not fit
    # From the turns read (those within the budget), so without another round trip:
    people: frozenset[str] = frozenset()  # ids who wrote or were mentioned by a person
    links: frozenset[str] = frozenset()  # URLs people wrote


@dataclass(frozen=True, slots=True)
class _Keys:
    lock: str
    conv: str
    meta: str
    images: str  # prefix of the image keys

    @property
    def scripted(self) -> list[str]:
        return [self.lock, self.conv, self.meta]


class HeldTurn:
    """A stored user turn whose conversation is locked until the `async with` ends."""

    def __init__(self, store: ConversationStore, key: ConversationKey, token: str) -> None:
        self._store = store
        self._key = key
        self._token = token
        self.finished = False
        self.history = History([], {}, None, False)
        self.renewer: asyncio.Task[None] | None = None

    async def finish(self, answer: Turn) -> None:
        """Store the answer and release the lock, in one round trip.

        The answer is not stored if the lock was lost meanwhile (logged) or the
        conversation was reset during the answer.
        """
        await self.stop_renewing()
        await self._store._finish(self._key, self._token, [answer])
        self.finished = True

    async def replace(self, old: Turn, new: Turn) -> bool:
        """Replace the user turn just stored (`old`) with `new`, in one round trip.

        For a turn whose content the model refused (`bot.rejected`). Nothing is
        overwritten unless the lock is still held and `old` is still the newest turn.
        The TTLs stay; images `new` no longer refers to expire with them. True when the
        turn was replaced.
        """
        return await self._store._replace(self._key, self._token, old, new)

    async def stop_renewing(self) -> None:
        """Stop the renewals, and wait for one in flight, before the lock is released."""
        if self.renewer is not None:
            self.renewer.cancel()
            await asyncio.wait({self.renewer})


class ConversationStore:
    """Conversation history and coordination, shared by every process on one Redis."""

    def __init__(
        self,
        client: Client,
        limits: Limits,
        prefix: str = DEFAULT_PREFIX,
        *,
        helpers: Sequence[Client] = (),
    ) -> None:
        self._redis = client
        self._runner: scripts.Runner = (
            MemoryRunner(client.conversations)
            if isinstance(client, EmbeddedRedis)
            else scripts.RedisRunner(client)
        )
        self._limits = limits
        self._prefix = prefix
        self._helpers = helpers  # closed with the client (a sentinel-watched master's sentinels)
        self._claims = ClaimMemo()

    @classmethod
    def from_settings(cls, settings: Settings) -> ConversationStore:
        """A store for `REDIS_MODE` on `REDIS_URL`, or an embedded one when it is unset."""
        client, helpers = connect(settings)
        return cls(client, settings.limits(), helpers=helpers)

    @property
    def redis(self) -> Client:
        """The client, so other Redis-backed parts (usage, quotas, documents) share its pool."""
        return self._redis

    @property
    def prefix(self) -> str:
        """What every key of this store starts with; other parts put theirs under it."""
        return self._prefix

    def turn(
        self,
        key: ConversationKey,
        turn: Turn,
        images: Mapping[str, bytes],
        budget_tokens: int,
        *,
        seed: SeedLoader | None = None,
        timeout: float = LOCK_TIMEOUT,
        blocking_timeout: float = LOCK_WAIT,
    ) -> AbstractAsyncContextManager[HeldTurn]:
        """Lock the conversation, append the user turn and read the history to send.

        In the body of the `async with`, `held.history` holds the newest turns within
        `budget_tokens` (always at least `turn` itself) and their images, and
        `held.finish(answer)` stores the answer. `images` are the bytes of `turn`'s
        images. `seed` gives the platform thread's earlier messages; it is read, and
        stored before `turn`, only when the store has no list for the conversation.

        The lock is renewed every `timeout / 3` seconds while held, so a long answer
        keeps it and a crashed process loses it after `timeout`. `BotBusy` when another
        holder keeps it longer than `blocking_timeout`. It is released on exit, also
        when the body raises or is cancelled.
        """
        return self._turn(key, turn, images, budget_tokens, seed, timeout, blocking_timeout)

    @asynccontextmanager
    async def _turn(
        self,
        key: ConversationKey,
        turn: Turn,
        images: Mapping[str, bytes],
        budget: int,
        seed: SeedLoader | None,
        lease: float,
        wait: float,
    ) -> AsyncIterator[HeldTurn]:
        keys = self._keys(key)
        held = HeldTurn(self, key, secrets.token_hex(16))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        delay = RETRY_FIRST
        asked = False  # a BEGIN was sent: the lock may be ours even if no reply came
        append = self._append_args(keys, [turn], images)
        try:
            while True:
                asked = True
                with self._unavailable("turn", key):
                    reply = await self._runner.run(
                        scripts.BEGIN,
                        keys.scripted,
                        [held._token, _ms(lease), "1" if seed else "0", budget, *append],
                    )
                status = int(_seq(reply)[0])
                if status == 0:
                    asked = False
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        log.info("conversation %s still locked after %.1fs", key.id, wait)
                        raise BotBusy(f"conversation {key.id} is locked")
                    await asyncio.sleep(min(delay, remaining))
                    delay = min(delay * 2, RETRY_MAX)
                    continue
                if held.renewer is None:
                    held.renewer = asyncio.create_task(self._renew(key, keys, held._token, lease))
                if status == 2 and seed is not None:
                    await self._append(key, await seed(), {}, only_if_absent=True)
                    seed = None
                    continue
                held.history = self._history(_seq(reply), turn, images)
                break
            yield held
        finally:
            if held.renewer is not None:
                held.renewer.cancel()
            if asked and not held.finished:
                # Shielded so that a second cancellation cannot leave the lock held.
                await asyncio.shield(self._release(held))

    async def extend(
        self,
        key: ConversationKey,
        turns: Sequence[Turn],
        images: Mapping[str, bytes] | None = None,
    ) -> None:
        """Append several turns in one round trip."""
        await self._append(key, turns, images or {}, only_if_absent=False)

    async def _append(
        self,
        key: ConversationKey,
        turns: Sequence[Turn],
        images: Mapping[str, bytes],
        *,
        only_if_absent: bool,
    ) -> None:
        if not turns:
            return
        keys = self._keys(key)
        args = ["1" if only_if_absent else "0", *self._append_args(keys, turns, images)]
        with self._unavailable("extend", key):
            await self._runner.run(scripts.EXTEND, keys.scripted, args)

    async def exists(self, key: ConversationKey) -> bool:
        """Whether the conversation has history, i.e. the bot has taken part in it."""
        with self._unavailable("exists", key):
            return await self._runner.exists(self._keys(key).conv)

    async def set_model(self, key: ConversationKey, model: str) -> None:
        meta = self._keys(key).meta
        with self._unavailable("set_model", key):
            await self._runner.set_field(meta, "model", model, self._limits.history_ttl)

    async def get_model(self, key: ConversationKey) -> str | None:
        with self._unavailable("get_model", key):
            return await self._runner.get_field(self._keys(key).meta, "model")

    async def reset(self, key: ConversationKey) -> None:
        """Forget the conversation's history and settings. Its images expire on their own."""
        keys = self._keys(key)
        with self._unavailable("reset", key):
            await self._runner.delete(keys.conv, keys.meta)

    async def claim_event(self, event_id: str, ttl: int = 3600) -> bool:
        """True the first time `event_id` is claimed by any process within `ttl` seconds.

        A copy of an event this process has claimed (or seen claimed) needs no round trip.
        """
        return await self._claims.claim(event_id, ttl, lambda: self._claim(event_id, ttl))

    async def _claim(self, event_id: str, ttl: int) -> bool:
        with self._unavailable("claim_event"):
            return await self._runner.claim(f"{self._prefix}event:{event_id}", ttl)

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
        for helper in self._helpers:
            await helper.aclose()

    def _keys(self, key: ConversationKey) -> _Keys:
        tag = "{" + key.id + "}"
        p = self._prefix
        return _Keys(f"{p}lock:{tag}", f"{p}conv:{tag}", f"{p}meta:{tag}", f"{p}img:{tag}:")

    def _append_args(
        self, keys: _Keys, turns: Sequence[Turn], images: Mapping[str, bytes]
    ) -> list[Any]:
        """The arguments of an append (see `bot.store.scripts`)."""
        refs = list(dict.fromkeys(h for t in turns for h in t.image_hashes))
        given = [h for h in refs if h in images]
        kept = [h for h in refs if h not in images]
        return [
            self._limits.history_ttl,
            self._limits.history_turns,
            keys.images,
            len(turns),
            *(t.to_json() for t in turns),
            len(given),
            *(item for h in given for item in (h, images[h])),
            len(kept),
            *kept,
        ]

    def _history(self, reply: Sequence[Any], turn: Turn, images: Mapping[str, bytes]) -> History:
        _, length, model, newest_first, found = reply
        turns = [Turn.from_json(raw) for raw in reversed(newest_first)]
        read = dict(zip(found[::2], found[1::2], strict=True))
        stored = {h: images[h] for h in turn.image_hashes if h in images}
        stored.update((_text(h) or "", data) for h, data in read.items())
        return History(
            turns=turns,
            images=stored,
            model=_text(model) or None,
            trimmed=len(turns) < int(length),
            people=people_in(turns),
            links=links_in(turns),
        )

    async def _finish(self, key: ConversationKey, token: str, turns: Sequence[Turn]) -> None:
        keys = self._keys(key)
        with self._unavailable("finish", key):
            still_held = await self._runner.run(
                scripts.FINISH, keys.scripted, [token, *self._append_args(keys, turns, {})]
            )
        if not still_held:
            log.warning("the lock on %s had expired before it was released", key.id)

    async def _replace(self, key: ConversationKey, token: str, old: Turn, new: Turn) -> bool:
        keys = self._keys(key)
        with self._unavailable("replace", key):
            replaced = await self._runner.run(
                scripts.REPLACE, keys.scripted, [token, old.to_json(), new.to_json()]
            )
        return bool(replaced)

    async def _release(self, held: HeldTurn) -> None:
        await held.stop_renewing()
        try:
            await self._finish(held._key, held._token, [])
        except StoreUnavailable:
            log.warning("could not release the lock on %s (it expires by itself)", held._key.id)

    async def _renew(self, key: ConversationKey, keys: _Keys, token: str, lease: float) -> None:
        """Reset the lock's lease every `lease / 3` seconds until cancelled or lost."""
        while True:
            await asyncio.sleep(lease / 3)
            try:
                renewed = await self._runner.run(scripts.RENEW, [keys.lock], [token, _ms(lease)])
            except (RedisError, OSError) as exc:
                log.warning("could not renew the lock on %s: %r", key.id, exc)
                continue
            if not renewed:
                log.error("lost the lock on %s: it expired before it was renewed", key.id)
                return

    @contextmanager
    def _unavailable(self, operation: str, key: ConversationKey | None = None) -> Iterator[None]:
        """Turn any Redis failure into `StoreUnavailable`, logged with what was being done."""
        try:
            yield
        except (RedisError, OSError) as exc:
            where = f" for {key.id}" if key else ""
            log.warning("Redis %s failed%s: %s: %s", operation, where, type(exc).__name__, exc)
            raise StoreUnavailable(f"Redis {operation} failed: {exc}") from exc


def _ms(seconds: float) -> int:
    return max(int(seconds * 1000), 1)


def _seq(value: object) -> Sequence[Any]:
    if not isinstance(value, list):
        raise StoreUnavailable(f"unexpected script reply {type(value).__name__}")
    return value


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value
