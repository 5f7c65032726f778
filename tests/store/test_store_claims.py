"""A twin delivery of an event claimed in this process costs no Redis round trip."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from bot.errors import StoreUnavailable
from bot.settings import Limits
from bot.store import ConversationStore
from bot.store.claims import ClaimMemo


class Asker:
    """Stands in for Redis's SET NX: counts the questions, answers after `gate` opens."""

    def __init__(self, answer: bool = True) -> None:
        self.asked = 0
        self.answer = answer
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail: Exception | None = None

    async def __call__(self) -> bool:
        self.asked += 1
        await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        return self.answer


async def test_twins_at_the_same_instant_ask_once_and_one_wins() -> None:
    memo, ask = ClaimMemo(), Asker()
    ask.gate.clear()
    twins = [asyncio.create_task(memo.claim("Ev1", 60, ask)) for _ in range(2)]
    await asyncio.sleep(0)
    ask.gate.set()
    assert sorted(await asyncio.gather(*twins)) == [False, True]
    assert ask.asked == 1


async def test_a_later_copy_is_taken_without_asking() -> None:
    memo, ask = ClaimMemo(), Asker()
    assert await memo.claim("Ev1", 60, ask)
    assert not await memo.claim("Ev1", 60, ask)
    assert await memo.claim("Ev2", 60, ask)
    assert ask.asked == 2


async def test_an_event_another_process_claimed_is_remembered_as_taken() -> None:
    memo, ask = ClaimMemo(), Asker(answer=False)
    assert not await memo.claim("Ev1", 60, ask)
    assert not await memo.claim("Ev1", 60, ask)
    assert ask.asked == 1


async def test_a_failed_claim_fails_its_waiting_twin_and_is_not_remembered() -> None:
    memo, ask = ClaimMemo(), Asker()
    ask.gate.clear()
    ask.fail = StoreUnavailable("down")
    twins = [asyncio.create_task(memo.claim("Ev1", 60, ask)) for _ in range(2)]
    await asyncio.sleep(0)
    ask.gate.set()
    for twin in twins:
        with pytest.raises(StoreUnavailable):
            await twin
    ask.fail = None
    assert await memo.claim("Ev1", 60, ask)  # Redis back: asked again
    assert ask.asked == 2


async def test_a_claim_is_forgotten_after_its_ttl_and_memory_stays_bounded() -> None:
    memo, ask = ClaimMemo(size=3), Asker()
    assert await memo.claim("Ev0", 0, ask)
    assert await memo.claim("Ev0", 60, ask)  # expired at once: asked again
    for n in range(1, 5):
        assert await memo.claim(f"Ev{n}", 60, ask)
    assert await memo.claim("Ev1", 60, ask)  # the oldest was forgotten
    assert not await memo.claim("Ev4", 60, ask)
    assert ask.asked == 7


async def test_the_store_sends_one_set_for_a_mention_and_its_twin(
    redis_url: str, redis_client: aioredis.Redis
) -> None:
    store = ConversationStore(aioredis.from_url(redis_url), Limits())
    sets = await _sets(redis_client)
    try:
        claims = await asyncio.gather(*(store.claim_event("Ev1") for _ in range(2)))
        assert sorted(claims) == [False, True]
        assert not await store.claim_event("Ev1")
        assert await _sets(redis_client) - sets == 1
        assert await redis_client.exists("parley:event:Ev1")
    finally:
        await store.aclose()


async def _sets(client: aioredis.Redis) -> int:
    stats = await client.info("commandstats")
    return int(stats.get("cmdstat_set", {}).get("calls", 0))
