"""The embedded store's keys in memory (`bot.store.memory`) against the Lua on a real Redis.

The differential test plays the same random sequence of store operations on a real Redis
and on an embedded keyspace, two processes each, and requires the same result from every
operation and the same keys at the end. Time passes under the test's control: the
embedded keyspace reads a clock the test moves, and on Redis every key's TTL is shortened
by the same amount (the scripts depend on time only through TTLs). Each step is whole
seconds plus a millisecond, and every TTL is whole seconds, so no deadline ever falls in
the few milliseconds of real time a sequence takes on Redis.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import redis.asyncio as aioredis
from fakeredis import FakeServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.conversation import ConversationKey, ImageRef, Part, Role, TextPart, Turn
from bot.errors import BotBusy
from bot.settings import Limits
from bot.store import ConversationStore, HeldTurn, History, scripts
from bot.store.client import EmbeddedRedis
from bot.store.memory import Keyspace, MemoryRunner
from tests.store.memory_keys import MemoryKeys

CONVERSATIONS = [ConversationKey("test", "team", "chan", f"thread-{n}") for n in range(2)]
PNGS = [b"\x89PNG\r\n\x1a\n" + bytes([n]) * 512 for n in range(2)]
SHAS = [hashlib.sha256(png).hexdigest() for png in PNGS]
EVENTS = ["Ev0", "Ev1", "Ev2"]
LIMITS = Limits(history_turns=4, history_ttl=60)
LEASE = 30  # seconds; a held turn's renewer first wakes after 10 s, after any sequence
BIG_BUDGET = 1_000_000


class Clock:
    """Seconds, moved by the test."""

    def __init__(self) -> None:
        self.ms = 1_000_000

    def __call__(self) -> float:
        return self.ms / 1000


# Operations. A `held` index picks one of the turns held open (modulo their number).


@dataclass(frozen=True)
class Begin:
    """A message: lock, store the user turn, read the history; then finish, release or hold."""

    process: int
    conv: int
    text: str
    tokens: int
    images: tuple[tuple[int, bool], ...]  # (which image, its bytes given with the turn)
    budget: int
    seed: bool
    then: Literal["finish", "release", "hold"]


@dataclass(frozen=True)
class Finish:
    held: int


@dataclass(frozen=True)
class Release:
    held: int


@dataclass(frozen=True)
class Replace:
    held: int


@dataclass(frozen=True)
class Renew:
    held: int


@dataclass(frozen=True)
class Extend:
    process: int
    conv: int
    tokens: tuple[int, ...]
    image: int | None


@dataclass(frozen=True)
class Reset:
    conv: int


@dataclass(frozen=True)
class SetModel:
    conv: int
    model: str


@dataclass(frozen=True)
class Look:
    """exists and get_model, from one process."""

    process: int
    conv: int


@dataclass(frozen=True)
class Claim:
    process: int
    event: int
    ttl: int


@dataclass(frozen=True)
class Elapse:
    seconds: int


Op = Begin | Finish | Release | Replace | Renew | Extend | Reset | SetModel | Look | Claim | Elapse

texts = st.one_of(st.text(max_size=30), st.integers(0, 20_000).map(lambda n: "x" * n))
conv = st.integers(0, len(CONVERSATIONS) - 1)
process = st.integers(0, 1)
held = st.integers(0, 3)
tokens = st.sampled_from([1, 5, 10, 20, 25])  # sums that often meet a budget exactly
begins = st.builds(
    Begin,
    process=process,
    conv=conv,
    text=texts,
    tokens=tokens,
    images=st.lists(st.tuples(st.integers(0, 1), st.booleans()), max_size=2).map(tuple),
    budget=st.sampled_from([1, 20, 25, 45, 50, BIG_BUDGET]),
    seed=st.booleans(),
    then=st.sampled_from(["finish", "release", "hold"]),
)
extends = st.builds(
    Extend,
    process=process,
    conv=conv,
    tokens=st.lists(tokens, max_size=3).map(tuple),
    image=st.none() | st.integers(0, 1),
)
elapses = st.builds(Elapse, st.sampled_from([1, 4, 10, 29, 30, 59, 61]))
# Messages most often, as in a chat; the rest about equally. (Hypothesis's one_of would
# collapse repeats of one strategy, so the weights are in a sampled list.)
operations: st.SearchStrategy[Op] = st.sampled_from(
    [
        *[begins] * 6,
        *[extends] * 2,
        *[elapses] * 3,
        st.builds(Finish, held),
        st.builds(Release, held),
        st.builds(Replace, held),
        st.builds(Renew, held),
        st.builds(Reset, conv),
        st.builds(SetModel, conv, st.sampled_from(["gpt-a", "gpt-b"])),
        st.builds(Look, process, conv),
        st.builds(Claim, process, st.integers(0, len(EVENTS) - 1), st.sampled_from([5, 60])),
    ]
).flatmap(lambda strategy: strategy)


def user(op: Begin) -> Turn:
    parts: list[Part] = [TextPart(op.text)]
    parts += [ImageRef(SHAS[n], "image/png") for n, _ in op.images]
    return Turn(Role.USER, tuple(parts), "A", op.tokens, author_id=f"U{op.process}")


async def seed() -> list[Turn]:
    return [Turn.text(Role.USER, "earlier", "B", author_id="U9"), Turn.text(Role.ASSISTANT, "ok")]


@dataclass
class Held:
    store: ConversationStore
    key: ConversationKey
    turn: Turn
    context: AbstractAsyncContextManager[HeldTurn]
    held: HeldTurn


@dataclass
class Side:
    """Two processes on one server, the held turns, and a way to make time pass."""

    stores: list[ConversationStore]
    raw: aioredis.Redis | MemoryKeys
    clock: Clock | None  # None: a real Redis, whose TTLs are shortened instead
    holding: list[Held] = field(default_factory=list)

    async def elapse(self, seconds: int) -> None:
        ms = seconds * 1000 + 1
        if self.clock is not None:
            self.clock.ms += ms
            return
        assert isinstance(self.raw, aioredis.Redis)
        async for key in self.raw.scan_iter("parley:*"):
            left = await self.raw.pttl(key)
            if left < 0:
                continue
            if left - ms <= 0:
                await self.raw.delete(key)
            else:
                await self.raw.pexpire(key, left - ms)

    def pick(self, index: int) -> Held | None:
        return self.holding[index % len(self.holding)] if self.holding else None

    async def play(self, op: Op) -> object:
        if isinstance(op, Begin):
            return await self.begin(op)
        if isinstance(op, Finish | Release | Replace | Renew):
            chosen = self.pick(op.held)
            if chosen is None:
                return "nothing held"
            if isinstance(op, Finish):
                self.holding.remove(chosen)
                await chosen.held.finish(Turn.text(Role.ASSISTANT, f"re: {chosen.turn.tokens}"))
                await chosen.context.__aexit__(None, None, None)
            elif isinstance(op, Release):
                self.holding.remove(chosen)
                await chosen.context.__aexit__(None, None, None)
            elif isinstance(op, Replace):
                new = Turn.text(Role.USER, "[removed]", "A", author_id="U0")
                replaced = await chosen.held.replace(chosen.turn, new)
                return replaced, await self.look(chosen.key)
            else:
                # What the renewer sends every lease / 3, sent now.
                lock = chosen.store._keys(chosen.key).lock
                args = [chosen.held._token, LEASE * 1000]
                renewed = await chosen.store._runner.run(scripts.RENEW, [lock], args)
                return renewed, await self.look(chosen.key)
            return await self.look(chosen.key)
        if isinstance(op, Extend):
            key = CONVERSATIONS[op.conv]
            turns = [Turn(Role.ASSISTANT, (TextPart("more"),), tokens=k) for k in op.tokens]
            images = {}
            if op.image is not None and turns:
                turns[-1] = turns[-1].with_parts([ImageRef(SHAS[op.image], "image/png")])
                images = {SHAS[op.image]: PNGS[op.image]}
            await self.stores[op.process].extend(key, turns, images)
            return await self.look(key)
        if isinstance(op, Reset):
            await self.stores[0].reset(CONVERSATIONS[op.conv])
            return await self.look(CONVERSATIONS[op.conv])
        if isinstance(op, SetModel):
            await self.stores[1].set_model(CONVERSATIONS[op.conv], op.model)
            return await self.look(CONVERSATIONS[op.conv])
        if isinstance(op, Look):
            store, key = self.stores[op.process], CONVERSATIONS[op.conv]
            return await store.exists(key), await store.get_model(key)
        if isinstance(op, Claim):
            return await self.stores[op.process].claim_event(EVENTS[op.event], op.ttl)
        await self.elapse(op.seconds)
        return None

    async def begin(self, op: Begin) -> History | str:
        store, key, turn = self.stores[op.process], CONVERSATIONS[op.conv], user(op)
        images = {SHAS[n]: PNGS[n] for n, given in op.images if given}
        context = store.turn(
            key,
            turn,
            images,
            op.budget,
            seed=seed if op.seed else None,
            timeout=LEASE,
            blocking_timeout=0,  # a held lock answers busy at once
        )
        try:
            held = await context.__aenter__()
        except BotBusy:
            return "busy"
        if op.then == "hold":
            self.holding.append(Held(store, key, turn, context, held))
        else:
            if op.then == "finish":
                await held.finish(Turn.text(Role.ASSISTANT, f"re: {op.tokens}"))
            await context.__aexit__(None, None, None)
        return held.history

    async def look(self, key: ConversationKey) -> tuple[object, ...]:
        """The conversation's keys as stored: the list, the model, the lock, the TTLs."""
        tag = "{" + key.id + "}"
        conv, meta, lock = (f"parley:{kind}:{tag}" for kind in ("conv", "meta", "lock"))
        images = [f"parley:img:{tag}:{sha}" for sha in SHAS]
        return (
            [raw.decode() for raw in await self.raw.lrange(conv, 0, -1)],
            await self.raw.hget(meta, "model"),
            bool(await self.raw.exists(lock)),
            [await self.seconds_left(k) for k in (conv, meta, lock, *images)],
        )

    async def seconds_left(self, key: str) -> int:
        """PTTL rounded up to seconds: the same on both sides (see the module docstring)."""
        left = await self.raw.pttl(key)
        return left if left < 0 else -(-left // 1000)

    async def everything(self) -> tuple[object, ...]:
        looks = [await self.look(key) for key in CONVERSATIONS]
        events = [await self.seconds_left(f"parley:event:{e}") for e in EVENTS]
        return *looks, events

    async def close(self) -> None:
        for chosen in self.holding:
            await chosen.context.__aexit__(None, None, None)
        for store in self.stores:
            await store.aclose()


@asynccontextmanager
async def redis_side(url: str) -> AsyncIterator[Side]:
    raw = aioredis.from_url(url)
    await raw.flushdb()
    side = Side([ConversationStore(aioredis.from_url(url), LIMITS) for _ in range(2)], raw, None)
    try:
        yield side
    finally:
        await side.close()
        await raw.flushdb()
        await raw.aclose()


@asynccontextmanager
async def memory_side() -> AsyncIterator[Side]:
    clock, server = Clock(), FakeServer()
    conversations = Keyspace(clock)
    clients = [EmbeddedRedis(server=server, conversations=conversations) for _ in range(2)]
    side = Side([ConversationStore(c, LIMITS) for c in clients], MemoryKeys(conversations), clock)
    try:
        yield side
    finally:
        await side.close()


async def outcomes(side: Side, ops: list[Op]) -> list[object]:
    played = [await side.play(op) for op in ops]
    return [*played, await side.everything()]


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=st.lists(operations, min_size=10, max_size=50))
def test_memory_twins_answer_as_the_lua_on_redis(redis_url: str, ops: list[Op]) -> None:
    async def both() -> tuple[list[object], list[object]]:
        async with redis_side(redis_url) as on_redis:
            expected = await outcomes(on_redis, ops)
        async with memory_side() as in_memory:
            return expected, await outcomes(in_memory, ops)

    expected, got = asyncio.run(both())
    assert got == expected


async def add_turn(store: ConversationStore, key: ConversationKey, turn: Turn, **kw: Any) -> None:
    async with store.turn(key, turn, kw.get("images", {}), BIG_BUDGET) as held:
        await held.finish(Turn.text(Role.ASSISTANT, "ok"))


async def test_expired_conversations_leave_memory_though_nobody_touches_them_again() -> None:
    clock = Clock()
    conversations = Keyspace(clock)
    client = EmbeddedRedis(server=FakeServer(), conversations=conversations)
    store = ConversationStore(client, Limits(history_ttl=60))
    picture = Turn.make(Role.USER, [TextPart("look"), ImageRef(SHAS[0], "image/png")])
    keys = [ConversationKey("test", "team", "chan", f"idle-{n}") for n in range(50)]
    for n, key in enumerate(keys):
        await add_turn(store, key, picture, images={SHAS[0]: PNGS[0]})
        await store.set_model(key, "gpt-a")
        assert await store.claim_event(f"Ev{n}", ttl=30)
    assert len(conversations) == 50 * 4  # conv, meta, image and event each; locks released

    clock.ms += 30_001
    assert len(conversations) == 50 * 4  # nothing is dropped without an operation
    await add_turn(store, keys[0], Turn.text(Role.USER, "still here"))  # reads the image
    assert len(conversations) == 50 * 3  # every event went
    clock.ms += 29_999
    await store.exists(keys[0])  # the idle threads at their deadline: alive, as on Redis
    assert len(conversations) == 50 * 3

    clock.ms += 1
    assert await store.claim_event("Ev-late", ttl=30)  # touches none of the idle threads
    assert sorted(conversations) == sorted(
        [
            "parley:event:Ev-late",
            *(f"parley:{kind}:{{{keys[0].id}}}" for kind in ("conv", "meta")),
            f"parley:img:{{{keys[0].id}}}:{SHAS[0]}",
        ]
    )
    clock.ms += 60_000
    await store.exists(keys[1])
    assert len(conversations) == 0
    await store.aclose()


def test_keys_expire_at_their_own_deadlines_whatever_the_order_they_were_given_in() -> None:
    clock = Clock()
    space = Keyspace(clock)
    space.tick()
    for n, seconds in enumerate([5, 1, 3, 1, 5, 2]):
        space.set(f"k{n}", "v", seconds * 1000)
    space.rpush("list", ['{"k":1,"p":[]}'])  # no TTL: never expires
    space.expire("k0", 2)  # moved to an earlier deadline
    space.pexpire("k3", 4000)  # and to a later one

    def alive_after(seconds: float) -> list[str]:
        clock.ms = 1_000_000 + round(seconds * 1000)
        space.tick()
        return sorted(space)

    assert alive_after(1) == ["k0", "k1", "k2", "k3", "k4", "k5", "list"]
    assert alive_after(1.001) == ["k0", "k2", "k3", "k4", "k5", "list"]
    assert alive_after(2.001) == ["k2", "k3", "k4", "list"]
    assert alive_after(3.001) == ["k3", "k4", "list"]
    assert alive_after(4.001) == ["k4", "list"]
    assert alive_after(100) == ["list"]


class Replaying(MemoryRunner):
    """Runs every twin twice, as a script is when redis-py resends it after a broken link."""

    async def run(self, script: scripts.Script, keys: Any, args: Any) -> object:
        await super().run(script, keys, args)
        return await super().run(script, keys, args)


async def test_a_replayed_twin_stores_nothing_twice() -> None:
    conversations = Keyspace()
    client = EmbeddedRedis(server=FakeServer(), conversations=conversations)
    store = ConversationStore(client, LIMITS)
    store._runner = Replaying(conversations)
    key = CONVERSATIONS[0]

    async with store.turn(key, Turn.text(Role.USER, "one"), {}, BIG_BUDGET, seed=seed) as held:
        assert [t.plain_text for t in held.history.turns] == ["earlier", "ok", "one"]
        await held.finish(Turn.text(Role.ASSISTANT, "answer"))
    async with store.turn(key, Turn.text(Role.USER, "two"), {}, BIG_BUDGET) as held:
        history = held.history
    await store.aclose()

    assert [t.plain_text for t in history.turns] == ["ok", "one", "answer", "two"]
    # LIMITS keeps four turns, so "earlier" went; the replay answers from the list as
    # kept, every turn of which was read.
    assert not history.trimmed
    assert await MemoryKeys(conversations).llen("parley:conv:{" + key.id + "}") == 4
