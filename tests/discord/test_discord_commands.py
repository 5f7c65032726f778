"""`/chat`, `/reset` and `/model` through the real client and the fake Discord."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from tests.discord.harness import DiscordBot, conversation, discord_bot
from tests.discord.test_discord_messages import png
from tests.fakes.discord_api import Json
from tests.fakes.llm_server import Error, Reply


@pytest.fixture
async def bot(redis_client: aioredis.Redis, redis_url: str) -> AsyncIterator[DiscordBot]:
    async with discord_bot(redis_url) as running:
        yield running
        running.assert_no_pings()


def option(name: str, value: str, kind: int = 3) -> Json:
    return {"name": name, "type": kind, "value": value}


async def test_chat_is_deferred_answered_and_continues_in_a_thread_on_the_answer(
    bot: DiscordBot,
) -> None:
    fake = bot.discord
    bot.llm.enqueue(Reply("Use a deque.", first_token_delay=0.3))
    record = await fake.slash("chat", bot.general, bot.alice, [option("prompt", "fast queue?")])
    await bot.answered(bot.general, text="Use a deque.")

    [callback] = fake.find_calls("POST", f"/interactions/{record.id}/{record.token}/callback")
    assert callback.body["type"] == 5  # deferred: "Parley is thinking…"
    assert callback.query.get("with_response") in ("1", "true", "True")
    original = fake.messages[record.original_id or ""]
    assert original["content"] == "Use a deque."
    assert fake.find_calls("PATCH", rf"/webhooks/\d+/{record.token}/messages/@original")
    [thread] = fake.threads_of(bot.general)
    assert thread["id"] == record.original_id  # started on the answer
    assert thread["name"] == "fast queue?"

    await fake.user_says(thread["id"], bot.alice, "why not a list?")
    await bot.answered(thread["id"], text="why not a list?")
    assert conversation(bot.llm.requests[1]) == [
        ("user", "Alice: fast queue?"),
        ("assistant", "Use a deque."),
        ("user", "Alice: why not a list?"),
    ]


async def test_chat_model_option_and_image_reach_the_model(bot: DiscordBot) -> None:
    fake = bot.discord
    picture = fake.attachment("chart.png", "image/png", png())
    await fake.slash(
        "chat",
        bot.general,
        bot.alice,
        [
            option("prompt", "describe"),
            option("image", picture["id"], kind=11),
            option("model", "gpt-5.1"),
        ],
        attachments=[picture],
    )
    await bot.answered(bot.general, text="[image]")
    [request] = bot.llm.requests
    assert request.model == "gpt-5.1"
    assert request.image_urls[0].startswith("data:image/")


async def test_model_error_is_shown_and_the_interaction_completed(bot: DiscordBot) -> None:
    fake = bot.discord
    bot.llm.enqueue(Error(401))
    record = await fake.slash("chat", bot.general, bot.alice, [option("prompt", "hi")])
    await bot.answered(bot.general, text="EVOLINK_API_KEY")
    original = fake.messages[record.original_id or ""]
    assert original["content"].startswith("⚠️ ")
    assert not original["flags"] & 128  # no longer "thinking"


async def test_an_answer_outliving_the_token_is_finished_with_the_bot_token(
    bot: DiscordBot,
) -> None:
    fake = bot.discord
    text = "word " * 60
    bot.llm.enqueue(Reply(text, chunk_size=20, chunk_delay=0.15))
    record = await fake.slash("chat", bot.general, bot.alice, [option("prompt", "long one")])
    await fake.wait_until(lambda: bool(fake.find_calls("PATCH", r"/webhooks/.*/@original")))
    fake.expire_token(record.token)
    await bot.answered(bot.general, text=text.strip())
    original_id = record.original_id or ""

    assert fake.messages[original_id]["content"].strip() == text.strip()
    assert fake.find_calls("PATCH", f"/channels/{bot.general}/messages/{original_id}")


async def test_an_interaction_near_its_token_expiry_is_answered_with_the_bot_token(
    bot: DiscordBot,
) -> None:
    fake = bot.discord
    record = await fake.slash(
        "chat",
        bot.general,
        bot.alice,
        [option("prompt", "late")],
        created_at=time.time() - 14.5 * 60,
    )
    await bot.answered(bot.general, text="late")
    assert not fake.find_calls("PATCH", r"/webhooks/.*")
    assert fake.find_calls("PATCH", f"/channels/{bot.general}/messages/{record.original_id}")


async def test_reset_in_a_dm_starts_a_fresh_conversation(bot: DiscordBot) -> None:
    fake = bot.discord
    await fake.user_says(bot.dm, bot.alice, "my number is 42")
    await bot.answered(bot.dm, text="42")
    await fake.slash("reset", bot.dm, bot.alice)
    await fake.wait_until(lambda: bool(fake.find_calls("POST", r"/interactions/.*/callback")))
    [callback] = fake.find_calls("POST", r"/interactions/.*/callback")
    assert callback.body["type"] == 4
    assert callback.body["data"]["flags"] == 64  # only Alice sees it
    assert "fresh conversation" in callback.body["data"]["content"]

    await fake.user_says(bot.dm, bot.alice, "what is my number?")
    await bot.answered(bot.dm, 2, text="what is my number?")
    assert conversation(bot.llm.requests[1]) == [("user", "Alice: what is my number?")]


async def test_model_in_a_thread_switches_that_threads_model(bot: DiscordBot) -> None:
    fake = bot.discord
    thread_id = await bot.start_thread("hi")
    await fake.slash("model", thread_id, bot.alice, [option("name", "gpt-5.1-thinking")])
    await fake.wait_until(lambda: bool(fake.find_calls("POST", r"/interactions/.*/callback")))
    await fake.user_says(thread_id, bot.alice, "again")
    await bot.answered(thread_id, 2, text="again")
    assert [r.model for r in bot.llm.requests] == ["gpt-5.5", "gpt-5.1-thinking"]


async def test_without_thread_permission_the_answer_stays_in_the_channel(
    bot: DiscordBot,
) -> None:
    fake = bot.discord
    fake.threads_allowed = False
    missing = fake.attachment("gone.png", "image/png", png())
    fake.files.clear()  # the CDN no longer has it
    await fake.slash(
        "chat",
        bot.general,
        bot.alice,
        [option("prompt", "no threads here"), option("image", missing["id"], kind=11)],
        attachments=[missing],
    )
    [answer] = await bot.answered(bot.general, text="follow-ups")
    assert answer["content"].startswith("You said: Alice: no threads here")
    assert "couldn't download “gone.png” (HTTP 404)" in answer["content"]
    assert fake.threads_of(bot.general) == []
