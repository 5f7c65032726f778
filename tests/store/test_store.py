"""ConversationStore against the real Redis and against the embedded default.

A "process" is a store with a client of its own; two of them on one server stand for two
replicas of the bot. Embedded, the conversation keys are in process memory
(`bot.store.memory`), looked at through `MemoryKeys` where a test looks at Redis's.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis.asyncio as aioredis
from fakeredis import FakeAsyncRedis, FakeServer
from pydantic import ValidationError
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import AbstractConnection

from bot.conversation import ConversationKey, ImageRef, Role, SeedLoader, TextPart, Turn
from bot.errors import BotBusy, StoreUnavailable
from bot.settings import Limits, Settings
from bot.store import ConversationStore, HeldTurn, History
from bot.store.client import EmbeddedRedis
from bot.store.memory import Keyspace
from tests.store.memory_keys import MemoryKeys

KEY = ConversationKey("test", "team", "chan", "thread-1")
OTHER = ConversationKey("test", "team", "chan", "thread-2")
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 64
PNG_SHA = hashlib.sha256(PNG).hexdigest()
BIG_BUDGET = 1_000_000
Images = dict[str, bytes]


class Backend:
    """Makes stores ("processes") that share one server, and closes them afterwards."""

    def __init__(
        self, connect: Callable[[], aioredis.Redis], raw: aioredis.Redis | MemoryKeys
    ) -> None:
        self._connect = connect
        self._stores: list[ConversationStore] = []
        self.raw = raw  # for looking at the conversation keys directly
        self.embedded = isinstance(raw, MemoryKeys)

    def store(self, limits: Limits | None = None) -> ConversationStore:
        store = ConversationStore(self._connect(), limits or Limits())
        self._stores.append(store)
        return store

    async def aclose(self) -> None:
        for store in self._stores:
            await store.aclose()
        if isinstance(self.raw, aioredis.Redis):
            await self.raw.aclose()


@pytest.fixture(params=["redis", "embedded"])
async def backend(request: pytest.FixtureRequest, redis_url: str) -> AsyncIterator[Backend]:
    if request.param == "embedded":
        server, conversations = FakeServer(), Keyspace()
        made = Backend(
            lambda: EmbeddedRedis(server=server, conversations=conversations),
            MemoryKeys(conversations),
        )
        yield made
        await made.aclose()
        return
    raw = aioredis.from_url(redis_url)
    made = Backend(lambda: aioredis.from_url(redis_url), raw)
    await raw.flushdb()  # the suite's own database (see conftest)
    yield made
    await raw.flushdb()
    await made.aclose()


class RoundTrips:
    """Counts writes to Redis connections: one per command or per pipeline execute."""

    def __init__(self) -> None:
        self.count = 0

    async def measure(self, call: Awaitable[Any]) -> int:
        before = self.count
        await call
        return self.count - before


@pytest.fixture
def round_trips(monkeypatch: pytest.MonkeyPatch) -> RoundTrips:
    counter = RoundTrips()
    send = AbstractConnection.send_packed_command

    async def counting(self: AbstractConnection, command: Any, check_health: bool = True) -> None:
        counter.count += 1
        await send(self, command, check_health)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", counting)
    return counter


def conv_key(key: ConversationKey) -> str:
    return "parley:conv:{" + key.id + "}"


def meta_key(key: ConversationKey) -> str:
    return "parley:meta:{" + key.id + "}"


def lock_key(key: ConversationKey) -> str:
    return "parley:lock:{" + key.id + "}"


def image_key(key: ConversationKey, sha256: str) -> str:
    return "parley:img:{" + key.id + "}:" + sha256


async def add_user_turn(
    store: ConversationStore,
    key: ConversationKey,
    turn: Turn,
    images: Mapping[str, bytes],
    budget_tokens: int,
) -> History:
    """Store a user turn as the engine does, the lock released without an answer."""
    async with store.turn(key, turn, images, budget_tokens) as held:
        return held.history


def lock(
    store: ConversationStore, key: ConversationKey, *, timeout: float, blocking_timeout: float
) -> AbstractAsyncContextManager[HeldTurn]:
    return store.turn(
        key, user("waits"), {}, BIG_BUDGET, timeout=timeout, blocking_timeout=blocking_timeout
    )


def user(text: str, *images: str) -> Turn:
    return Turn.make(Role.USER, [TextPart(text), *(ImageRef(h, "image/png") for h in images)])


def sized(text: str, tokens: int) -> Turn:
    return Turn(role=Role.USER, parts=(TextPart(text),), tokens=tokens)


def texts(turns: Iterable[Turn]) -> list[str]:
    return [t.plain_text for t in turns]


async def test_turns_read_back_oldest_first(backend: Backend) -> None:
    store = backend.store()
    assert not await store.exists(KEY)

    first = await add_user_turn(store, KEY, user("one"), {}, BIG_BUDGET)
    await store.extend(KEY, [Turn.text(Role.ASSISTANT, "two")])
    history = await add_user_turn(store, KEY, user("three"), {}, BIG_BUDGET)

    assert texts(first.turns) == ["one"]
    assert texts(history.turns) == ["one", "two", "three"]
    assert [t.role for t in history.turns] == [Role.USER, Role.ASSISTANT, Role.USER]
    assert not history.trimmed
    assert await store.exists(KEY)
    assert not await store.exists(OTHER)


async def test_extend_seeds_before_the_new_turn(backend: Backend) -> None:
    store = backend.store()
    await store.extend(KEY, [Turn.text(Role.USER, "old"), Turn.text(Role.ASSISTANT, "older?")])
    await store.extend(KEY, [])

    history = await add_user_turn(store, KEY, user("new"), {}, BIG_BUDGET)

    assert texts(history.turns) == ["old", "older?", "new"]


async def test_budget_keeps_the_newest_turns_and_flags_the_trim(backend: Backend) -> None:
    store = backend.store()
    await store.extend(KEY, [sized("a", 50), sized("b", 30), sized("c", 30)])

    history = await add_user_turn(store, KEY, sized("d", 30), {}, budget_tokens=95)
    assert texts(history.turns) == ["b", "c", "d"]
    assert history.trimmed

    # A contiguous run: a small old turn behind one that does not fit is left out too.
    history = await add_user_turn(store, KEY, sized("e", 10), {}, budget_tokens=75)
    assert texts(history.turns) == ["c", "d", "e"]

    whole = await add_user_turn(store, KEY, sized("f", 1), {}, BIG_BUDGET)
    assert texts(whole.turns) == ["a", "b", "c", "d", "e", "f"]
    assert not whole.trimmed


async def test_who_is_in_the_thread_is_read_with_the_history(backend: Backend) -> None:
    """People and their links come with the history a turn reads, with no extra round
    trip; the bot's and other bots' turns don't count."""
    store = backend.store()
    alice = Turn.text(
        Role.USER, "see https://docs.example.com/a", "Alice", author_id="U1", mentions={"U3"}
    )
    bot_post = Turn.text(Role.USER, "deploy https://ci.example.com", "CI bot")
    answer = Turn.text(Role.ASSISTANT, "ping <@U9> at https://evil.example")
    await store.extend(KEY, [alice, bot_post, answer])

    bob = Turn.text(Role.USER, "and you?", "Bob", author_id="U2")
    async with store.turn(KEY, bob, {}, 10_000) as held:
        assert held.history.people == {"U1", "U2", "U3"}
        assert held.history.links == {"https://docs.example.com/a"}


def test_a_turn_keeps_its_author_id_and_mentions() -> None:
    turn = Turn.text(Role.USER, "hi", "Alice", author_id="U1", mentions={"U3", "U2"})
    assert Turn.from_json(turn.to_json()) == turn
    assert turn.mentions == ("U2", "U3")
    # Turns stored before ids were kept still load, by nobody in particular.
    old = Turn.from_json('{"r":"user","a":"Alice","k":5,"p":[{"t":"hi"}]}')
    assert (old.author_id, old.mentions, old.by_person) == ("", (), False)


async def test_the_newest_turn_is_kept_even_over_budget(backend: Backend) -> None:
    store = backend.store()
    await add_user_turn(store, KEY, sized("small", 5), {}, BIG_BUDGET)

    history = await add_user_turn(store, KEY, sized("huge", 5_000), {}, budget_tokens=100)

    assert texts(history.turns) == ["huge"]
    assert history.trimmed


async def test_only_the_newest_history_turns_are_kept(backend: Backend) -> None:
    store = backend.store(Limits(history_turns=3))
    await store.extend(KEY, [sized(str(n), 1) for n in range(4)])

    history = await add_user_turn(store, KEY, sized("4", 1), {}, BIG_BUDGET)

    assert texts(history.turns) == ["2", "3", "4"]
    assert history.trimmed
    assert await backend.raw.llen(conv_key(KEY)) == 3


async def test_conversation_ttl_is_set_and_refreshed_by_each_turn(backend: Backend) -> None:
    store = backend.store(Limits(history_ttl=1_000))
    conv, meta = conv_key(KEY), meta_key(KEY)
    await store.set_model(KEY, "gpt-5.1")
    await add_user_turn(store, KEY, user("hi"), {}, BIG_BUDGET)
    assert 990 < await backend.raw.ttl(conv) <= 1_000
    assert 990 < await backend.raw.ttl(meta) <= 1_000

    await backend.raw.expire(conv, 10)
    await backend.raw.expire(meta, 10)
    await store.extend(KEY, [Turn.text(Role.ASSISTANT, "hello")])

    assert 990 < await backend.raw.ttl(conv) <= 1_000
    assert 990 < await backend.raw.ttl(meta) <= 1_000


async def test_an_image_is_stored_once_per_conversation_and_turns_refer_to_it(
    backend: Backend,
) -> None:
    store = backend.store(Limits(history_ttl=1_000))
    await add_user_turn(store, KEY, user("look", PNG_SHA), {PNG_SHA: PNG}, BIG_BUDGET)
    history = await add_user_turn(store, KEY, user("again", PNG_SHA), {PNG_SHA: PNG}, BIG_BUDGET)
    await add_user_turn(store, OTHER, user("same", PNG_SHA), {PNG_SHA: PNG}, BIG_BUDGET)

    # Tagged per conversation, so a turn's script reaches its images in one slot.
    assert sorted(await backend.raw.keys("parley:img:*")) == sorted(
        image_key(k, PNG_SHA).encode() for k in (KEY, OTHER)
    )
    assert await backend.raw.get(image_key(KEY, PNG_SHA)) == PNG
    assert 990 < await backend.raw.ttl(image_key(KEY, PNG_SHA)) <= 1_000
    assert history.images == {PNG_SHA: PNG}
    assert [t.image_hashes for t in history.turns] == [[PNG_SHA], [PNG_SHA]]
    for raw in await backend.raw.lrange(conv_key(KEY), 0, -1):
        assert len(raw) < 200  # a hash and a MIME type, never the bytes or their base64


async def test_image_ttl_is_refreshed_when_read_and_when_referred_to(backend: Backend) -> None:
    store = backend.store(Limits(history_ttl=1_000))
    stored = image_key(KEY, PNG_SHA)
    await add_user_turn(store, KEY, user("look", PNG_SHA), {PNG_SHA: PNG}, BIG_BUDGET)

    await backend.raw.expire(stored, 10)
    history = await add_user_turn(store, KEY, user("what was it?"), {}, BIG_BUDGET)
    assert history.images == {PNG_SHA: PNG}
    assert 990 < await backend.raw.ttl(stored) <= 1_000

    await backend.raw.expire(stored, 10)
    await store.extend(KEY, [Turn.make(Role.ASSISTANT, [ImageRef(PNG_SHA, "image/png")])])
    assert 990 < await backend.raw.ttl(stored) <= 1_000


async def test_images_of_turns_beyond_the_budget_are_not_read(backend: Backend) -> None:
    store = backend.store()
    await add_user_turn(store, KEY, user("look", PNG_SHA), {PNG_SHA: PNG}, BIG_BUDGET)
    await store.extend(KEY, [sized("long", 500)])

    history = await add_user_turn(store, KEY, sized("and now?", 10), {}, budget_tokens=600)

    assert texts(history.turns) == ["long", "and now?"]
    assert history.images == {}


async def test_an_expired_image_is_left_out_of_the_history(backend: Backend) -> None:
    store = backend.store()
    await add_user_turn(store, KEY, user("look", PNG_SHA), {PNG_SHA: PNG}, BIG_BUDGET)
    await backend.raw.delete(image_key(KEY, PNG_SHA))

    history = await add_user_turn(store, KEY, user("and now?"), {}, BIG_BUDGET)

    assert history.images == {}
    assert [t.image_hashes for t in history.turns] == [[PNG_SHA], []]


async def test_a_message_and_its_answer_take_three_round_trips_claim_and_lock_included(
    backend: Backend, round_trips: RoundTrips
) -> None:
    store = backend.store()
    other_png = PNG + b"2"
    other_sha = hashlib.sha256(other_png).hexdigest()
    await add_user_turn(store, KEY, user("earlier", PNG_SHA), {PNG_SHA: PNG}, BIG_BUDGET)
    await store.extend(KEY, [Turn.text(Role.ASSISTANT, "a picture")])

    async def message_and_answer(key: ConversationKey, turn: Turn, images: Images) -> None:
        assert await store.claim_event(f"event-{key.id}")
        async with store.turn(key, turn, images, BIG_BUDGET) as held:
            assert held.history.turns[-1] == turn
            await held.finish(Turn.text(Role.ASSISTANT, "ok"))

    # A new image in this turn and an older one in the history, in the same trips.
    with_images = await round_trips.measure(
        message_and_answer(KEY, user("and this?", other_sha), {other_sha: other_png})
    )
    text_only = await round_trips.measure(message_and_answer(OTHER, user("hi"), {}))

    # Embedded, nothing at all goes to fakeredis: the conversation keys are in memory.
    assert (with_images, text_only) == ((0, 0) if backend.embedded else (3, 3))
    history = await add_user_turn(store, KEY, user("last"), {}, BIG_BUDGET)
    assert texts(history.turns)[-3:] == ["and this?", "ok", "last"]
    assert set(history.images) == {PNG_SHA, other_sha}


@pytest.mark.parametrize("embedded", [False, True], ids=["redis", "embedded"])
async def test_a_new_connection_sends_no_handshake_commands(
    embedded: bool, redis_url: str, redis_client: aioredis.Redis, round_trips: RoundTrips
) -> None:
    url = None if embedded else redis_url
    store = ConversationStore.from_settings(Settings(_env_file=None, redis_url=url))
    select = 1 if url and urlsplit(url).path.strip("/") not in ("", "0") else 0
    try:
        # Through the client every other part shares (embedded, the store's own keys are
        # not on it).
        first = await round_trips.measure(store.redis.exists("Ev-first"))
        again = await round_trips.measure(store.redis.exists("Ev-again"))
    finally:
        await store.aclose()
    # No HELLO, CLIENT SETNAME/SETINFO or health-check PING: only SELECT, once.
    assert (first, again) == (1 + select, 1)


async def test_model_is_set_per_conversation(backend: Backend) -> None:
    store = backend.store()
    assert await store.get_model(KEY) is None

    await store.set_model(KEY, "gpt-5.1-thinking")
    history = await add_user_turn(store, KEY, user("hi"), {}, BIG_BUDGET)

    assert await store.get_model(KEY) == "gpt-5.1-thinking"
    assert history.model == "gpt-5.1-thinking"
    assert await store.get_model(OTHER) is None


async def test_reset_forgets_history_and_model(backend: Backend) -> None:
    store = backend.store()
    await store.set_model(KEY, "gpt-5.1")
    await add_user_turn(store, KEY, user("one"), {}, BIG_BUDGET)
    await add_user_turn(store, OTHER, user("elsewhere"), {}, BIG_BUDGET)

    await store.reset(KEY)

    assert not await store.exists(KEY)
    assert await store.get_model(KEY) is None
    assert texts((await add_user_turn(store, KEY, user("two"), {}, BIG_BUDGET)).turns) == ["two"]
    assert await store.exists(OTHER)


async def test_an_event_is_claimed_once_across_processes(backend: Backend) -> None:
    first, second = backend.store(), backend.store()

    assert await first.claim_event("Ev1", ttl=60)
    assert not await second.claim_event("Ev1", ttl=60)
    assert not await first.claim_event("Ev1", ttl=60)
    assert await second.claim_event("Ev2", ttl=60)
    assert 50 < await backend.raw.ttl("parley:event:Ev1") <= 60


async def test_the_lock_excludes_another_process(backend: Backend) -> None:
    first, second = backend.store(), backend.store()

    async with lock(first, KEY, timeout=5, blocking_timeout=0.1):
        with pytest.raises(BotBusy) as busy:
            async with lock(second, KEY, timeout=5, blocking_timeout=0.15):
                pytest.fail("two holders")
        async with lock(second, OTHER, timeout=5, blocking_timeout=0.1):
            pass  # another conversation is not held up

    async with lock(second, KEY, timeout=5, blocking_timeout=0.1):
        pass
    assert "still working on an earlier message" in busy.value.user_message


async def test_a_waiting_message_goes_after_the_holder(backend: Backend) -> None:
    first, second = backend.store(), backend.store()
    order: list[str] = []
    held = asyncio.Event()

    async def answer(store: ConversationStore, name: str, hold: float) -> None:
        async with lock(store, KEY, timeout=5, blocking_timeout=2):
            held.set()
            order.append(f"{name} in")
            await asyncio.sleep(hold)
            order.append(f"{name} out")

    one = asyncio.create_task(answer(first, "one", 0.15))
    await held.wait()
    await asyncio.gather(one, answer(second, "two", 0))

    assert order == ["one in", "one out", "two in", "two out"]


async def test_the_lock_is_renewed_past_its_timeout(backend: Backend) -> None:
    first, second = backend.store(), backend.store()
    lease = 1.0  # renewed every third of it: a stall of two thirds would lose it
    loop = asyncio.get_running_loop()

    async with lock(first, KEY, timeout=lease, blocking_timeout=0.1):
        started = loop.time()
        renewals, last = 0, await backend.raw.pttl(lock_key(KEY))
        # Watch the renewals themselves rather than sleep: the lease must be reset at
        # least three times and outlive twice its length.
        while renewals < 3 or loop.time() - started < 2 * lease:
            await asyncio.sleep(0.02)
            left = await backend.raw.pttl(lock_key(KEY))
            assert 0 < left <= lease * 1000, "the lock expired while held"
            renewals += left > last
            last = left
        with pytest.raises(BotBusy):
            async with lock(second, KEY, timeout=lease, blocking_timeout=0.05):
                pytest.fail("the lock expired while held")

    assert await backend.raw.exists(lock_key(KEY)) == 0


async def test_the_lock_is_released_when_the_body_raises(backend: Backend) -> None:
    first, second = backend.store(), backend.store()

    with pytest.raises(ValueError):
        async with lock(first, KEY, timeout=5, blocking_timeout=0.1):
            raise ValueError("boom")

    async with lock(second, KEY, timeout=5, blocking_timeout=0.05):
        pass


async def test_the_lock_is_released_when_the_holder_is_cancelled(backend: Backend) -> None:
    first, second = backend.store(), backend.store()
    held = asyncio.Event()

    async def hold_forever() -> None:
        async with lock(first, KEY, timeout=5, blocking_timeout=0.1):
            held.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(hold_forever())
    await held.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    async with lock(second, KEY, timeout=5, blocking_timeout=0.05):
        pass


async def test_embedded_default_warns_once_that_history_is_not_kept(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="bot.store"):
        store = ConversationStore.from_settings(Settings(redis_url=None))

    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert "not kept across restarts" in warnings[0].getMessage()
    assert "\n" not in warnings[0].getMessage()

    history = await add_user_turn(store, KEY, user("hi"), {}, BIG_BUDGET)
    assert texts(history.turns) == ["hi"]
    assert await store.ping()
    await store.aclose()


async def test_the_seed_is_stored_once_before_the_first_turn(backend: Backend) -> None:
    first, second = backend.store(), backend.store()
    seeded: list[str] = []
    seeding, release = asyncio.Event(), asyncio.Event()

    def loader(name: str) -> SeedLoader:
        async def seed() -> list[Turn]:
            seeded.append(name)
            seeding.set()
            await release.wait()  # the platform is slow; the other replica is waiting
            return [Turn.text(Role.USER, "first"), Turn.text(Role.ASSISTANT, "hello")]

        return seed

    async def message(store: ConversationStore, text: str) -> list[str]:
        async with store.turn(KEY, user(text), {}, BIG_BUDGET, seed=loader(text)) as held:
            await held.finish(Turn.text(Role.ASSISTANT, f"re: {text}"))
            return texts(held.history.turns)

    one = asyncio.create_task(message(first, "second"))
    await seeding.wait()
    two = asyncio.create_task(message(second, "third"))
    release.set()

    assert await one == ["first", "hello", "second"]
    assert await two == ["first", "hello", "second", "re: second", "third"]
    assert seeded == ["second"]  # the store had a list by the time the second one ran


async def test_a_seed_is_not_read_when_the_store_has_the_thread(backend: Backend) -> None:
    store = backend.store()
    await add_user_turn(store, KEY, user("first"), {}, BIG_BUDGET)

    async def seed() -> list[Turn]:
        pytest.fail("seeded a thread the store has")

    async with store.turn(KEY, user("second"), {}, BIG_BUDGET, seed=seed) as held:
        assert texts(held.history.turns) == ["first", "second"]


async def test_an_answer_is_not_stored_alone_after_the_thread_was_reset(
    backend: Backend,
) -> None:
    store = backend.store()
    async with store.turn(KEY, user("one"), {}, BIG_BUDGET) as held:
        await store.reset(KEY)  # /reset, or the history expired, during the answer
        await held.finish(Turn.text(Role.ASSISTANT, "answer to one"))

    history = await add_user_turn(store, KEY, user("two"), {}, BIG_BUDGET)

    # Never [assistant, user]: a history that starts with an answer to nothing.
    assert texts(history.turns) == ["two"]
    assert await backend.raw.exists(lock_key(KEY)) == 0


class Replaying(FakeAsyncRedis):
    """Runs every script twice, as redis-py does when a connection breaks before the reply."""

    async def eval(self, *args: Any) -> Any:
        await super().eval(*args)
        return await super().eval(*args)

    async def evalsha(self, *args: Any) -> Any:
        await super().evalsha(*args)
        return await super().evalsha(*args)


async def test_a_replayed_script_stores_nothing_twice() -> None:
    store = ConversationStore(Replaying(server=FakeServer()), Limits())

    async def seed() -> list[Turn]:
        return [Turn.text(Role.USER, "earlier")]

    async with store.turn(KEY, user("one"), {}, BIG_BUDGET, seed=seed) as held:
        assert texts(held.history.turns) == ["earlier", "one"]
        await held.finish(Turn.text(Role.ASSISTANT, "answer"))
    history = await add_user_turn(store, KEY, user("two"), {}, BIG_BUDGET)
    await store.aclose()

    assert texts(history.turns) == ["earlier", "one", "answer", "two"]


async def test_an_answer_is_not_stored_once_the_lock_was_lost(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    first, second = backend.store(), backend.store()
    async with first.turn(KEY, user("one"), {}, BIG_BUDGET) as held:
        await backend.raw.delete(lock_key(KEY))  # as if it expired while the holder stalled
        history = await add_user_turn(second, KEY, user("two"), {}, BIG_BUDGET)
        await held.finish(Turn.text(Role.ASSISTANT, "answer to one"))

    assert texts(history.turns) == ["one", "two"]
    history = await add_user_turn(second, KEY, user("three"), {}, BIG_BUDGET)
    # Not [one, two, answer to one, three]: an answer after another message's turn.
    assert texts(history.turns) == ["one", "two", "three"]
    assert "had expired before it was released" in caplog.text


async def test_the_embedded_store_takes_a_burst_of_200_conversations() -> None:
    store = ConversationStore.from_settings(Settings(_env_file=None, redis_url=None))
    keys = [ConversationKey("test", "team", "chan", f"burst-{n}") for n in range(200)]
    all_in = asyncio.Barrier(len(keys))

    async def converse(n: int, key: ConversationKey) -> list[str]:
        # Both deliveries of a mention claim it: one wins.
        claims = await asyncio.gather(*(store.claim_event(f"Ev{n}") for _ in range(2)))
        assert sorted(claims) == [False, True]
        async with store.turn(key, user(f"question {n}"), {}, BIG_BUDGET) as held:
            await all_in.wait()  # every conversation locked and stored at once
            await held.finish(Turn.text(Role.ASSISTANT, f"answer {n}"))
        return texts((await add_user_turn(store, key, user("next"), {}, BIG_BUDGET)).turns)

    try:
        histories = await asyncio.gather(*(converse(n, k) for n, k in enumerate(keys)))
    finally:
        await store.aclose()
    assert histories == [[f"question {n}", f"answer {n}", "next"] for n in range(200)]


def test_cluster_and_sentinel_modes_need_their_nodes_in_redis_url() -> None:
    for mode in ("cluster", "sentinel"):
        with pytest.raises(ValidationError, match=f"{mode} needs REDIS_URL"):
            Settings(_env_file=None, redis_mode=mode)


async def test_cluster_seed_nodes_come_from_a_comma_separated_redis_url() -> None:
    settings = Settings(
        _env_file=None, redis_url="redis://10.0.0.1:7000, 10.0.0.2:7001", redis_mode="cluster"
    )
    store = ConversationStore.from_settings(settings)
    try:
        client = store._redis
        assert isinstance(client, RedisCluster)
        nodes = {(n.host, n.port) for n in client.nodes_manager.startup_nodes.values()}
        assert nodes == {("10.0.0.1", 7000), ("10.0.0.2", 7001)}
    finally:
        await store.aclose()


# Redis unreachable


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port bound but never listened on: connections to it are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def calls(store: ConversationStore) -> list[Callable[[], Awaitable[Any]]]:
    async def locked() -> None:
        async with lock(store, KEY, timeout=1, blocking_timeout=0.1):
            pytest.fail("locked without Redis")

    return [
        lambda: add_user_turn(store, KEY, user("hi", PNG_SHA), {PNG_SHA: PNG}, BIG_BUDGET),
        lambda: store.extend(KEY, [Turn.text(Role.USER, "seed")]),
        lambda: store.exists(KEY),
        lambda: store.set_model(KEY, "gpt-5.1"),
        lambda: store.get_model(KEY),
        lambda: store.reset(KEY),
        lambda: store.claim_event("Ev1"),
        locked,
    ]


async def assert_unavailable(store: ConversationStore) -> None:
    for call in calls(store):
        with pytest.raises(StoreUnavailable) as failed:
            await call()
        assert "temporarily unavailable" in failed.value.user_message
    assert not await store.ping()


async def test_every_call_fails_fast_with_store_unavailable(
    closed_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(redis_url=f"redis://127.0.0.1:{closed_port}/0")
    store = ConversationStore.from_settings(settings)
    loop = asyncio.get_running_loop()
    started = loop.time()

    await assert_unavailable(store)

    assert loop.time() - started < 5
    assert f"Redis turn failed for {KEY.id}" in caplog.text
    await store.aclose()


class Outage:
    """A server the test can stop and start again, and a store from settings on it."""

    def __init__(
        self,
        store: ConversationStore,
        stop: Callable[[], Awaitable[None]],
        start: Callable[[], Awaitable[None]],
    ) -> None:
        self.store, self.stop, self.start = store, stop, start


async def redis_server(port: int) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        "redis-server",
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--save", "",
        "--appendonly", "no",
        "--daemonize", "no",
        stdout=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    for _ in range(200):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.01)
            continue
        writer.close()
        await writer.wait_closed()
        return process
    process.kill()
    await process.wait()
    raise RuntimeError("redis-server did not start")


@pytest.fixture(params=["redis", "fakeredis"])
async def outage(request: pytest.FixtureRequest) -> AsyncIterator[Outage]:
    # The embedded store has no outage (its keys are in process memory); fakeredis, which
    # can be disconnected, stands for a second kind of server the scripts run on.
    if request.param == "fakeredis":
        server = FakeServer()
        store = ConversationStore(FakeAsyncRedis(server=server), Limits())

        async def disconnect() -> None:
            server.connected = False

        async def reconnect() -> None:
            server.connected = True

        yield Outage(store, disconnect, reconnect)
        await store.aclose()
        return

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    processes = [await redis_server(port)]

    async def stop() -> None:
        processes[-1].terminate()
        await processes[-1].wait()

    async def start() -> None:
        processes.append(await redis_server(port))

    store = ConversationStore.from_settings(Settings(redis_url=f"redis://127.0.0.1:{port}/0"))
    yield Outage(store, stop, start)
    await store.aclose()
    for process in processes:
        if process.returncode is None:
            process.terminate()
        await process.wait()


async def test_it_recovers_by_itself_when_redis_is_back(outage: Outage) -> None:
    store = outage.store
    await add_user_turn(store, KEY, user("before"), {}, BIG_BUDGET)

    await outage.stop()
    await assert_unavailable(store)

    await outage.start()
    assert await store.ping()
    history = await add_user_turn(store, KEY, user("after"), {}, BIG_BUDGET)
    assert texts(history.turns)[-1] == "after"
    async with lock(store, KEY, timeout=1, blocking_timeout=0.1):
        assert await store.claim_event("after-outage")


async def test_a_restart_between_two_turns_goes_unnoticed(outage: Outage) -> None:
    store = outage.store
    await add_user_turn(store, KEY, user("before"), {}, BIG_BUDGET)

    await outage.stop()
    await outage.start()

    history = await add_user_turn(store, KEY, user("after"), {}, BIG_BUDGET)
    assert texts(history.turns)[-1] == "after"


async def test_a_burst_beyond_redis_pys_default_pool_queues_instead_of_failing(
    redis_url: str, redis_client: aioredis.Redis
) -> None:
    # redis-py's default asyncio pool refuses the 101st concurrent command.
    store = ConversationStore.from_settings(Settings(_env_file=None, redis_url=redis_url))
    try:
        claimed = await asyncio.gather(*(store.claim_event(f"burst-{i}") for i in range(300)))
    finally:
        await store.aclose()
    assert claimed == [True] * 300
