"""The operator's policy and feedback as Discord users meet them, through discord.py.

The role layer (an allowlist by role, a persona by role), the quiet 🚫 for a refused
mention, `/usage`, a refused `/chat`, and 👍/👎 buttons that work on any replica.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from bot.conversation import system_text
from bot.intake.feedback import FEEDBACK_PREFIX, Rating
from bot.policy import Place
from tests.discord.harness import DiscordBot, discord_bot
from tests.fakes.discord_api import FakeDiscord, Json
from tests.waiting import until_counted


@pytest.fixture
async def bot(
    redis_client: aioredis.Redis, redis_url: str, tmp_path: Path
) -> AsyncIterator[DiscordBot]:
    def configure(fake: FakeDiscord, world: dict[str, Any]) -> dict[str, Any]:
        helpers = fake.add_role(world["guild"], "helpers")
        fake.member_roles[world["alice"]["id"]] = [helpers]
        path = tmp_path / "policy.yaml"
        path.write_text(
            "default: {allow: false}\n"
            "roles:\n"
            f'  "discord:{helpers}": {{allow: true, system_prompt: "You help the helpers."}}\n'
            "users:\n"
            f'  "discord:{world["alice"]["id"]}": {{quota: {{user_tokens_per_day: 90000}}}}\n'
        )
        return {"bot_policy_file": str(path)}

    async with discord_bot(redis_url, configure) as running:
        yield running


def denied(bot: DiscordBot, reason: str) -> float:
    value = bot.service.metrics.registry.get_sample_value(
        "parley_policy_denied_total", {"reason": reason}
    )
    return value or 0.0


def callback(fake: FakeDiscord) -> Json:
    [call] = fake.find_calls("POST", r"/interactions/.*/callback")
    body: Json = call.body
    return body


async def test_a_role_lets_its_members_in_with_its_persona(bot: DiscordBot) -> None:
    fake = bot.discord
    thread = await bot.ask("hello")
    await bot.answered(thread, text="hello")
    assert bot.llm.requests[0].body["messages"][0] == {
        "role": "system",
        "content": system_text("You help the helpers."),
    }

    first = await fake.mention_bot(bot.general, bot.bob, "me too")
    await fake.wait_until(lambda: bool(fake.reactions))
    await fake.mention_bot(bot.general, bot.bob, "and again")
    await fake.wait_until(lambda: denied(bot, "default") == 2)
    await bot.settle()
    # A quiet 🚫 on the first message only; nothing public, no model call.
    assert [(m, e) for _, m, e in fake.reactions] == [(first["id"], "🚫")]
    assert len(bot.llm.requests) == 1
    assert not fake.threads_of(bot.general)[1:]


async def test_usage_shows_my_use_and_cap_only_to_me(bot: DiscordBot) -> None:
    fake = bot.discord
    thread = await bot.ask("count me")
    await bot.answered(thread, text="count me")
    me = Place("discord", bot.guild, bot.general, bot.alice["id"])
    await until_counted(bot.service.engine.governance, me, 1)
    await fake.slash("usage", bot.general, bot.alice)
    await fake.wait_until(lambda: bool(fake.find_calls("POST", r"/interactions/.*/callback")))
    data = callback(fake)["data"]
    assert data["flags"] == 64
    assert "in 1 answer." in data["content"]
    assert "Your daily cap: 90,000 tokens" in data["content"]


async def test_a_refused_chat_is_answered_privately_before_anything_is_posted(
    bot: DiscordBot,
) -> None:
    fake = bot.discord
    await fake.slash("chat", bot.general, bot.bob, [{"name": "prompt", "type": 3, "value": "hi"}])
    await fake.wait_until(lambda: bool(fake.find_calls("POST", r"/interactions/.*/callback")))
    body = callback(fake)
    assert body["type"] == 4 and body["data"]["flags"] == 64  # not a public "thinking…"
    assert "isn't available here" in body["data"]["content"]
    assert bot.llm.requests == []


def rated(bot: DiscordBot, rating: str) -> float:
    value = bot.service.metrics.registry.get_sample_value(
        "parley_feedback_total", {"rating": rating, "model": "gpt-5.5"}
    )
    return value or 0.0


async def test_answers_carry_feedback_buttons_that_count_a_vote(bot: DiscordBot) -> None:
    fake = bot.discord
    thread = await bot.ask("rate me")
    await bot.answered(thread, text="rate me")
    await fake.wait_until(lambda: any(m["components"] for m in fake.bot_messages(thread)))
    [answer] = [m for m in fake.bot_messages(thread) if m["components"]]
    ids = [c["custom_id"] for c in answer["components"][0]["components"]]
    persona = f"roles:discord:{fake.member_roles[bot.alice['id']][0]}"
    assert ids == [
        FEEDBACK_PREFIX + Rating("up", "gpt-5.5", persona).encode(),
        FEEDBACK_PREFIX + Rating("down", "gpt-5.5", persona).encode(),
    ]

    record = await fake.press(answer, ids[0], bot.alice)
    await fake.wait_until(lambda: rated(bot, "up") == 1)
    await fake.wait_until(lambda: bool(fake.callbacks_to(record)))
    [thanks] = fake.callbacks_to(record)
    assert thanks["data"]["flags"] == 64 and "Thanks" in thanks["data"]["content"]

    # 👎 asks what went wrong; the answer is stored with the vote.
    record = await fake.press(answer, ids[1], bot.alice)
    await fake.wait_until(lambda: record.modal is not None)
    assert record.modal is not None and record.modal["title"] == "What went wrong?"
    label = "Tell us what was wrong with the answer"
    sent = await fake.submit_modal(record, bot.alice, {label: "It missed the point."})
    await fake.wait_until(lambda: bool(fake.callbacks_to(sent)))
    assert "Thanks" in fake.callbacks_to(sent)[0]["data"]["content"]
    governance = bot.service.engine.governance
    assert governance is not None
    counts = await governance.feedback.read([datetime.now(UTC).date().isoformat()])
    assert counts.rows("model") == [("gpt-5.5", 0, 1)]  # Alice's vote moved to 👎
    [comment] = counts.comments
    assert comment["comment"] == "It missed the point." and comment["rating"] == "down"


async def test_a_button_another_replica_sent_works_here(bot: DiscordBot) -> None:
    """Nothing of the button lives in the process that sent it: its id says it all."""
    fake = bot.discord
    thread = await bot.ask("an answer")
    await bot.answered(thread, text="an answer")
    answer = fake.bot_messages(thread)[-1]
    elsewhere = FEEDBACK_PREFIX + Rating("down", "gpt-5.1", "channels:discord:9").encode()
    answer["components"] = [
        {"type": 1, "components": [{"type": 2, "style": 2, "custom_id": elsewhere}]}
    ]
    await fake.press(answer, elsewhere, bot.alice)
    await fake.wait_until(
        lambda: (
            bot.service.metrics.registry.get_sample_value(
                "parley_feedback_total", {"rating": "down", "model": "gpt-5.1"}
            )
            == 1
        )
    )
