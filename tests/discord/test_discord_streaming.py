"""Streaming into Discord: edit pacing, the 2,000-character split, and no pings."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from adapters.discord.sink import MESSAGE_LIMIT
from tests.discord.harness import DiscordBot, discord_bot
from tests.fakes.llm_server import Reply


@pytest.fixture
async def bot(redis_client: aioredis.Redis, redis_url: str) -> AsyncIterator[DiscordBot]:
    async with discord_bot(redis_url) as running:
        yield running
        running.assert_no_pings()


def long_answer() -> str:
    """About 5,000 characters: prose, then a Python block far longer than one message."""
    prose = "\n\n".join(f"Paragraph {i}: " + "lorem ipsum dolor sit amet " * 8 for i in range(6))
    code = "\n".join(f"    total += compute({i}, factor={i * 3})  # step {i}" for i in range(85))
    return (
        f"{prose}\n\n```python\ndef run():\n    total = 0\n{code}\n    return total\n```\n\nDone."
    )


def without_added_fences(chunks: list[str]) -> str:
    """The chunks joined back, minus the fence lines the split added."""
    joined = chunks[0]
    for previous, chunk in itertools.pairwise(chunks):
        if previous.rstrip().endswith("```") and chunk.startswith("```python\n"):
            joined = joined.rstrip()[: -len("```")] + chunk[len("```python\n") :]
        else:
            joined += chunk
    return joined


async def test_a_5000_character_answer_is_split_without_losing_anything(bot: DiscordBot) -> None:
    text = long_answer()
    assert 4800 < len(text) < 5600
    bot.llm.enqueue(Reply(text, chunk_size=500))
    answers = await bot.answered(await bot.ask("long please"), 3, text="Done.")

    chunks = [m["content"] for m in answers]
    assert all(len(chunk) <= MESSAGE_LIMIT for chunk in chunks)
    assert all(chunk.count("```") % 2 == 0 for chunk in chunks)  # every block closes
    assert without_added_fences(chunks) == text


async def test_messages_are_edited_at_most_about_once_a_second(bot: DiscordBot) -> None:
    fake = bot.discord
    text = "tick " * 80
    bot.llm.enqueue(Reply(text, chunk_size=10, chunk_delay=0.08))  # ~3 s of streaming
    thread_id = await bot.ask("slowly")
    [answer] = await bot.answered(thread_id, text=text.strip())

    edits = fake.find_calls("PATCH", rf"/channels/{thread_id}/messages/{answer['id']}")
    edits = [e for e in edits if "content" in e.body]  # not the feedback buttons' edit
    assert len(edits) >= 2  # it did stream
    gaps = [b.at - a.at for a, b in itertools.pairwise(edits)]
    assert all(gap >= 0.9 for gap in gaps[:-1]), gaps  # the final edit may follow sooner


async def test_model_output_cannot_ping_anyone(bot: DiscordBot) -> None:
    fake = bot.discord
    ping = f"@everyone @here <@{bot.bob['id']}> <@&{bot.guild}> look!"
    bot.llm.enqueue(Reply(ping))
    await fake.slash(
        "chat", bot.general, bot.alice, [{"name": "prompt", "type": 3, "value": "ping them"}]
    )
    await bot.answered(bot.general, text="look!")
    bodies = bot.sent_messages()
    assert any(ping in body["content"] for body in bodies)
    assert all(body["allowed_mentions"] == {"parse": []} for body in bodies)
