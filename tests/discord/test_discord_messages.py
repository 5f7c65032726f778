"""Mentions, threads, DMs, attachments and what the bot ignores, through the real client."""

from __future__ import annotations

import base64
import io
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from PIL import Image

from tests.discord.harness import DiscordBot, conversation, discord_bot
from tests.fakes.llm_server import Error, Reply


@pytest.fixture
async def bot(redis_client: aioredis.Redis, redis_url: str) -> AsyncIterator[DiscordBot]:
    async with discord_bot(redis_url) as running:
        yield running
        running.assert_no_pings()


def png(width: int = 64, height: int = 48) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(out, format="PNG")
    return out.getvalue()


async def test_mention_is_answered_in_a_new_thread_named_from_the_question(
    bot: DiscordBot,
) -> None:
    fake = bot.discord
    thread_id = await bot.ask("how do I reverse a list in Python without copying it?")
    answers = await bot.answered(thread_id, text="reverse a list")

    [thread] = fake.threads_of(bot.general)
    assert thread["id"] == thread_id
    assert thread["name"] == "how do I reverse a list in Python without copying it?"
    assert fake.find_calls("POST", f"/channels/{thread_id}/typing")
    assert [m["content"] for m in answers] == [
        "You said: Alice: how do I reverse a list in Python without copying it?"
    ]
    assert fake.bot_messages(bot.general) == []  # nothing but the thread in the channel


async def test_thread_conversation_continues_with_history_and_no_mention(bot: DiscordBot) -> None:
    fake = bot.discord
    bot.llm.enqueue(Reply("Paris is the capital of France."))
    thread_id = await bot.start_thread("capital of France?")

    await fake.user_says(thread_id, bot.bob, "and its population?")
    await bot.answered(thread_id, 2, text="and its population?")

    assert conversation(bot.llm.requests[1]) == [
        ("user", "Alice: capital of France?"),
        ("assistant", "Paris is the capital of France."),
        ("user", "Bob: and its population?"),
    ]


async def test_dm_is_answered_inline(bot: DiscordBot) -> None:
    fake = bot.discord
    await fake.user_says(bot.dm, bot.alice, "hello in private")
    answers = await bot.answered(bot.dm, text="hello in private")
    assert [m["content"] for m in answers] == ["You said: Alice: hello in private"]
    assert not [c for c in fake.calls if c.path.endswith("/threads")]


async def test_image_attachment_reaches_the_model_as_a_data_url(bot: DiscordBot) -> None:
    fake = bot.discord
    picture = fake.attachment("red.png", "image/png", png())
    notes = fake.attachment("notes.md", "text/markdown", b"# Plan\n- ship it\n")
    binary = fake.attachment("tool.exe", "application/x-msdownload", b"MZ\x90\x00")
    thread_id = await bot.ask("what colour is this?", attachments=[picture, notes, binary])
    answers = await bot.answered(thread_id, text="[image]")

    [request] = bot.llm.requests
    [url] = request.image_urls
    mime, _, data = url.partition(";base64,")
    assert mime in ("data:image/png", "data:image/jpeg", "data:image/webp")
    decoded = Image.open(io.BytesIO(base64.b64decode(data)))
    assert decoded.size == (64, 48)
    assert "ship it" in request.last_user_text
    assert "tool.exe" in answers[-1]["content"]  # the skipped file is noted for the user


async def test_other_bots_and_itself_are_ignored(bot: DiscordBot) -> None:
    fake = bot.discord
    thread_id = await bot.start_thread("first question")
    await fake.mention_bot(thread_id, bot.other_bot, "bot talk")
    await fake.mention_bot(bot.general, bot.other_bot, "hi")
    await bot.settle()
    # One model request: its own answer (echoed by the gateway) and other bots were ignored.
    assert len(bot.llm.requests) == 1
    assert len(fake.threads_of(bot.general)) == 1


async def test_everyone_pings_and_system_messages_are_ignored(bot: DiscordBot) -> None:
    fake = bot.discord
    thread_id = await bot.start_thread("start")
    await fake.user_says(thread_id, bot.bob, "@everyone standup now", mention_everyone=True)
    await fake.user_says(bot.general, bot.bob, "@here lunch?", mention_everyone=True)
    await fake.user_says(thread_id, bot.bob, "", type=18)  # a thread-created system message
    await bot.settle()
    assert len(bot.llm.requests) == 1


async def test_mention_in_someone_elses_thread_reads_its_earlier_messages_once(
    bot: DiscordBot,
) -> None:
    fake = bot.discord
    thread_id = await fake.user_starts_thread(bot.general, bot.alice, "deploy plans")
    await fake.user_says(thread_id, bot.alice, "we deploy on Fridays")
    await fake.user_says(thread_id, bot.bob, "that's risky")
    await bot.settle()
    assert bot.llm.requests == []  # not addressed yet: a thread the bot is not in

    await fake.mention_bot(thread_id, bot.bob, "is that a good idea?")
    await bot.answered(thread_id, text="good idea")
    await fake.user_says(thread_id, bot.alice, "thanks")
    await bot.answered(thread_id, 2, text="thanks")

    first, second = bot.llm.requests
    assert conversation(first) == [
        ("user", "Alice: we deploy on Fridays"),
        ("user", "Bob: that's risky"),
        ("user", "Bob: is that a good idea?"),
    ]
    assert len(second.body["messages"]) == len(first.body["messages"]) + 2
    assert len(fake.find_calls("GET", f"/channels/{thread_id}/messages")) == 1


async def test_model_error_is_shown_in_the_thread(bot: DiscordBot) -> None:
    bot.llm.enqueue(Error(402))
    [answer] = await bot.answered(await bot.ask("hello"), text="quota")
    assert answer["content"].startswith("⚠️ ")
    assert "top up" in answer["content"]
