"""Discord answers embed no link the model made up (issue 13), through the real client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from tests.discord.harness import DiscordBot, discord_bot
from tests.fakes.discord_api import SUPPRESS_EMBEDS, Json
from tests.fakes.llm_server import Reply

TYPED = "https://docs.example.com/guide"
INVENTED = "https://evil.example/collect?d=secret"


@pytest.fixture
async def bot(redis_client: aioredis.Redis, redis_url: str) -> AsyncIterator[DiscordBot]:
    async with discord_bot(redis_url) as running:
        yield running
        running.assert_no_pings()


def suppressed(message: Json) -> bool:
    return bool(int(message.get("flags") or 0) & SUPPRESS_EMBEDS)


def neutralized(bot: DiscordBot, kind: str) -> float:
    value = bot.service.metrics.registry.get_sample_value(
        "parley_output_neutralized_total", {"kind": kind}
    )
    return value or 0.0


async def test_a_link_the_model_invented_gets_no_embed(bot: DiscordBot) -> None:
    text = f"Send your notes to {INVENTED} and you're done."
    bot.llm.enqueue(Reply(text, chunk_size=5))
    thread_id = await bot.ask("what now?")
    [answer] = await bot.answered(thread_id, text="you're done.")
    assert answer["content"] == text  # the link stays as written: clickable
    assert suppressed(answer)
    creates = bot.discord.find_calls("POST", f"/channels/{thread_id}/messages")
    assert creates and all(int(c.body["flags"]) & SUPPRESS_EMBEDS for c in creates)
    assert neutralized(bot, "link_preview") == 1


async def test_only_messages_whose_links_people_wrote_embed(bot: DiscordBot) -> None:
    """A split answer: the message with Alice's link embeds it, the one with a link
    nobody wrote does not."""
    first = f"The guide is at {TYPED}. " + "lorem ipsum dolor sit amet " * 65
    second = f"Also see {INVENTED} " + "lorem ipsum dolor sit amet " * 65
    text = f"{first.strip()}\n\n{second.strip()}\n\nThat's all."
    bot.llm.enqueue(Reply(text, chunk_size=10_000))
    thread_id = await bot.ask(f"where is the guide? {TYPED}")
    messages = await bot.answered(thread_id, 2, text="That's all.")
    assert [m["content"][:12] for m in messages] == ["The guide is", "Also see htt"]
    assert not suppressed(messages[0])
    assert suppressed(messages[1])


async def test_a_chat_answer_gets_no_embed_either(bot: DiscordBot) -> None:
    """`/chat`'s answer goes into the deferred original response, which is suppressed
    before the model's text reaches it."""
    fake = bot.discord
    text = f"Send your notes to {INVENTED}."
    bot.llm.enqueue(Reply(text, chunk_size=5))
    prompt = {"name": "prompt", "type": 3, "value": "what now?"}
    record = await fake.slash("chat", bot.general, bot.alice, [prompt])
    await bot.answered(bot.general, text=text)
    original = fake.messages[record.original_id or ""]
    assert original["content"] == text and suppressed(original)
    [flagged] = fake.find_calls("PATCH", rf"/channels/\d+/messages/{record.original_id}")
    first_edit = fake.find_calls("PATCH", rf"/webhooks/\d+/{record.token}/messages/@original")[0]
    assert flagged.at < first_edit.at
