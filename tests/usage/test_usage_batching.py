"""A burst of finished answers is recorded in a few round trips, every one counted."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from bot.conversation import ConversationKey
from bot.llm.types import Usage
from bot.usage import UsageMeter, read_usage


async def _calls(client: aioredis.Redis, *names: str) -> int:
    stats = await client.info("commandstats")
    return sum(int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in names)


async def _scripts_run(client: aioredis.Redis) -> int:
    return await _calls(client, "eval", "evalsha")


async def test_answers_finished_together_share_round_trips_and_all_count(
    redis_client: aioredis.Redis,
) -> None:
    meter = UsageMeter(redis_client, dict)
    before = await _scripts_run(redis_client)
    await asyncio.gather(
        *(
            meter.record(
                ConversationKey("slack", "T1", "C1", f"17.{n}"),
                f"U{n % 4}",
                "gpt-5.5",
                Usage(prompt_tokens=n, completion_tokens=1),
            )
            for n in range(100)
        )
    )
    # Those waiting when a recording starts go in it; the rest wait for it, then go in one.
    assert await _scripts_run(redis_client) - before <= 2
    days = [meter.clock().date().isoformat()]
    users = {
        r.key: (r.requests, r.prompt_tokens) for r in await read_usage(redis_client, days, "user")
    }
    assert users == {
        f"slack:U{u}": (25, sum(n for n in range(100) if n % 4 == u)) for u in range(4)
    }
    channel = await read_usage(redis_client, days, "channel")
    assert [(r.key, r.requests, r.completion_tokens) for r in channel] == [("slack:C1", 100, 100)]


async def test_a_recording_adds_each_counter_once_whatever_the_answers_in_it(
    redis_client: aioredis.Redis,
) -> None:
    meter = UsageMeter(redis_client, dict)
    before = await _calls(redis_client, "hincrby", "hincrbyfloat")
    await asyncio.gather(
        *(
            meter.record(
                ConversationKey("slack", "T1", "C1", f"18.{n}"),
                "U1",
                "gpt-5.5",
                Usage(prompt_tokens=10, completion_tokens=2),
            )
            for n in range(100)
        )
    )
    # requests, prompt and completion tokens, in four dimensions, per recording (at most 2).
    assert await _calls(redis_client, "hincrby", "hincrbyfloat") - before <= 2 * 3 * 4
    days = [meter.clock().date().isoformat()]
    (user,) = await read_usage(redis_client, days, "user")
    assert (user.requests, user.prompt_tokens, user.completion_tokens) == (100, 1000, 200)


async def test_answers_finishing_one_after_another_share_a_recording(
    redis_client: aioredis.Redis,
) -> None:
    meter = UsageMeter(redis_client, dict)
    before = await _scripts_run(redis_client)
    recordings = []
    for n in range(50):  # one answer finishing per pass of the loop, as in a burst
        recordings.append(
            asyncio.create_task(
                meter.record(
                    ConversationKey("slack", "T1", "C1", f"19.{n}"), "U1", "gpt-5.5", Usage(1, 1)
                )
            )
        )
        await asyncio.sleep(0)
    await asyncio.gather(*recordings)
    assert await _scripts_run(redis_client) - before <= 3
    days = [meter.clock().date().isoformat()]
    (user,) = await read_usage(redis_client, days, "user")
    assert user.requests == 50
