"""The operator's policy as Slack users meet it, through the real slack-bolt app.

Access (channel allowlist, a refused user), persona and tools per channel, quotas held
across two replicas on one Redis, the reset, the downgrade and `/parley usage`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis

from bot.conversation import system_text
from bot.intake.policy import estimate
from bot.policy import Place
from bot.service.serve import Service
from bot.usage import Governance
from tests.fakes.llm_server import Error, FakeLLM, Reply
from tests.fakes.slack_api import BOT_USER_ID, FakeSlack
from tests.slack.conftest import SlackBot, slack_settings, started_service, wait_answer
from tests.waiting import until_counted

ALICE = "U0ALICE"
BOB = "U0BOB"
OPEN = "C0OPEN"
CLOSED = "C0CLOSED"
SUPPORT = "C0SUPPORT"
MENTION = f"<@{BOT_USER_ID}>"


@asynccontextmanager
async def policy_bot(
    fake: FakeSlack, llm: FakeLLM, redis_url: str, path: Path, policy: str, **settings: Any
) -> AsyncIterator[SlackBot]:
    await asyncio.to_thread(path.write_text, policy)
    fake.add_user(ALICE, "Alice")
    fake.add_user(BOB, "Bob")
    service = await started_service(
        slack_settings(fake, llm, redis_url, bot_policy_file=str(path), **settings)
    )
    try:
        async with aiohttp.ClientSession() as http:
            yield SlackBot(fake, llm, service, http)
    finally:
        await service.shutdown()


Start = Callable[..., AbstractAsyncContextManager[SlackBot]]


@pytest.fixture
def start(
    fake_slack: FakeSlack,
    fake_llm: FakeLLM,
    redis_url: str,
    redis_client: aioredis.Redis,
    tmp_path: Path,
) -> Start:
    """`start(policy, **settings)`: `parley serve` with that policy file, on a clean Redis."""

    def run(policy: str, **settings: Any) -> AbstractAsyncContextManager[SlackBot]:
        path = tmp_path / "policy.yaml"
        return policy_bot(fake_slack, fake_llm, redis_url, path, policy, **settings)

    return run


async def mention(bot: SlackBot, channel: str, text: str, *, user: str = ALICE) -> str:
    """`user` mentions the bot at the top of `channel`; the thread an answer would go to."""
    message, body = bot.fake.person_says(channel, f"{MENTION} {text}", user=user)
    status, _, _ = await bot.post(body)
    assert status == 200
    return message.ts


async def refusal_in(fake: FakeSlack, channel: str, thread: str) -> str:
    """The ⚠️ message a refused turn leaves in its thread (no "thinking" status came first)."""
    await fake.wait_for(
        lambda: "⚠️" in fake.thread_text(channel, thread), what=f"a refusal in {thread}"
    )
    return fake.thread_text(channel, thread)


def denied(service: Service, reason: str) -> float:
    value = service.metrics.registry.get_sample_value(
        "parley_policy_denied_total", {"reason": reason}
    )
    return value or 0.0


async def test_a_channel_allowlist_refuses_privately_and_once(
    start: Start, fake_slack: FakeSlack, fake_llm: FakeLLM, redis_client: aioredis.Redis
) -> None:
    policy = f'default: {{allow: false}}\nchannels:\n  "slack:{OPEN}": {{allow: true}}\n'
    async with start(policy) as bot:
        await mention(bot, CLOSED, "first")
        await fake_slack.wait_for(lambda: fake_slack.ephemerals, what="the private notice")
        await mention(bot, CLOSED, "second")
        await fake_slack.wait_for(lambda: denied(bot.service, "default") == 2, what="2 denials")
        thread = await mention(bot, OPEN, "hello")
        assert await wait_answer(fake_slack, thread, channel=OPEN) == "You said: Alice: hello"

        (notice,) = fake_slack.ephemerals  # told once, not for every message
        assert notice["channel"] == CLOSED and notice["user"] == ALICE
        assert "isn't available here" in notice["text"]
        assert fake_slack.bot_messages(CLOSED) == []  # no public reply
        assert [r.last_user_text for r in fake_llm.requests] == ["Alice: hello"]


async def test_a_refused_user_is_told_privately_in_the_thread(
    start: Start, fake_slack: FakeSlack, fake_llm: FakeLLM, redis_client: aioredis.Redis
) -> None:
    policy = f'users:\n  "slack:{BOB}": {{allow: false}}\n'
    async with start(policy) as bot:
        thread = await mention(bot, OPEN, "hi", user=ALICE)
        await wait_answer(fake_slack, thread, channel=OPEN)
        _, body = fake_slack.person_says(OPEN, f"{MENTION} me too", user=BOB, thread_ts=thread)
        await bot.post(body)
        await fake_slack.wait_for(lambda: fake_slack.ephemerals, what="the private notice")
        (notice,) = fake_slack.ephemerals
        assert notice["user"] == BOB and notice["thread_ts"] == thread
        assert "for your account" in notice["text"]
        assert denied(bot.service, "user") == 1
        assert len(fake_llm.requests) == 1

        command = fake_slack.slash_command("/parley", "a question", user=BOB, channel=OPEN)
        await bot.post(command)
        await fake_slack.wait_for(lambda: fake_slack.responses, what="the command's refusal")
        assert "for your account" in fake_slack.responses[0]["text"]
        assert fake_slack.responses[0].get("response_type") == "ephemeral"
        assert not any("a question" in m.text for m in fake_slack.bot_messages(OPEN))


async def test_persona_model_and_tools_per_channel_reach_the_model(
    start: Start, fake_slack: FakeSlack, fake_llm: FakeLLM, redis_client: aioredis.Redis
) -> None:
    policy = f"""
default:
  system_prompt: "You are Parley."
  temperature: 0.7
channels:
  "slack:{SUPPORT}":
    system_prompt: "You are the support desk."
    model: gpt-5.1
    temperature: 0.2
    max_tokens: 300
    tools: [current_time]
  "slack:{CLOSED}": {{tools: []}}
"""
    async with start(policy, bot_tools=True) as bot:
        for channel in (OPEN, SUPPORT, CLOSED):
            thread = await mention(bot, channel, "who are you?")
            await wait_answer(fake_slack, thread, channel=channel)
    general, support, closed = (r.body for r in fake_llm.requests)
    assert general["model"] == "gpt-5.5" and general["temperature"] == 0.7
    assert general["messages"][0] == {"role": "system", "content": system_text("You are Parley.")}
    assert {t["function"]["name"] for t in general["tools"]} == {
        "current_time",
        "calculate",
        "fetch_url",
    }
    assert support["model"] == "gpt-5.1"
    assert support["messages"][0]["content"] == system_text("You are the support desk.")
    assert support["temperature"] == 0.2 and support["max_tokens"] == 300
    assert [t["function"]["name"] for t in support["tools"]] == ["current_time"]
    assert "tools" not in closed


async def test_a_quota_holds_across_two_replicas_answering_at_once(
    start: Start, fake_slack: FakeSlack, fake_llm: FakeLLM, redis_client: aioredis.Redis
) -> None:
    cap = 1000
    policy = f"default:\n  max_tokens: 200\n  quota: {{user_tokens_per_day: {cap}}}\n"
    async with start(policy) as first:
        second = await started_service(first.service.settings)
        try:
            persona = second.engine.governance.persona(Place("slack", "T", OPEN, ALICE))  # type: ignore[union-attr]
            reservation = estimate(persona, "question")
            admitted = -(-cap // reservation)  # each admitted while the held total is below
            asks = admitted + 3
            # Every answer is slow, so all reservations are held at once: the race.
            fake_llm.enqueue(*(Reply(first_token_delay=3.0) for _ in range(asks)))
            urls = [first.events_url, f"http://127.0.0.1:{second.port}/slack/events"]
            posts = []
            for i in range(asks):
                _, body = fake_slack.person_says(OPEN, f"{MENTION} question", user=ALICE)
                raw, headers = fake_slack.signed_request(body)
                posts.append(first.http.post(urls[i % 2], data=raw, headers=headers))
            for response in await asyncio.gather(*posts):
                assert response.status == 200
            refused = "Your daily limit of 1,000 tokens is used up"
            await fake_slack.wait_for(
                lambda: (
                    sum(refused in m.text for m in fake_slack.bot_messages(OPEN)) == asks - admitted
                    and sum(m.text.startswith("You said") for m in fake_slack.bot_messages(OPEN))
                    == admitted
                ),
                within=30,
                what="the answers and the refusals",
            )
            assert len(fake_llm.requests) == admitted
            keys = await redis_client.keys("parley:quota:*")
            assert keys, [k for k in await redis_client.keys("*") if b"event" not in k]
            used = await redis_client.mget(keys)
            assert 0 < int(used[0]) <= cap + reservation  # settled to the real usage
        finally:
            await second.shutdown()


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def governed_by_clock(service: Service, clock: Callable[[], datetime]) -> Governance:
    governance = service.engine.governance
    assert governance is not None
    service.engine.governance = Governance.build(
        governance.policy, service.engine.store.redis, service.metrics, clock=clock
    )
    return service.engine.governance


async def test_the_cap_answers_with_its_reset_and_lifts_at_the_reset_hour(
    start: Start, fake_slack: FakeSlack, fake_llm: FakeLLM, redis_client: aioredis.Redis
) -> None:
    policy = (
        "default:\n  max_tokens: 100\n"
        "  quota: {user_tokens_per_day: 50, channel_tokens_per_day: 100000, reset_hour_utc: 6}\n"
    )
    async with start(policy) as bot:
        clock = Clock(datetime(2026, 3, 1, 5, 30, tzinfo=UTC))
        governed_by_clock(bot.service, clock)
        thread = await mention(bot, OPEN, "one")
        assert (await wait_answer(fake_slack, thread, channel=OPEN)).startswith("You said")
        thread = await mention(bot, OPEN, "two")
        refusal = await refusal_in(fake_slack, OPEN, thread)
        assert "Your daily limit of 50 tokens is used up" in refusal
        assert "It resets at 06:00 UTC, in 30 min." in refusal
        assert len(fake_llm.requests) == 1

        clock.now += timedelta(minutes=31)  # a new quota day began at 06:00
        thread = await mention(bot, OPEN, "three")
        assert (await wait_answer(fake_slack, thread, channel=OPEN)).startswith("You said")


async def test_near_the_cap_a_cheaper_model_answers_and_says_so(
    start: Start, fake_slack: FakeSlack, fake_llm: FakeLLM, redis_client: aioredis.Redis
) -> None:
    policy = (
        "default:\n  max_tokens: 100\n  quota:\n    user_tokens_per_day: 10000\n"
        "    downgrade_model: gpt-5.1\n    downgrade_at: 0.5\n"
    )
    async with start(policy) as bot:
        governance = bot.service.engine.governance
        assert governance is not None
        await governance.reserve(Place("slack", fake_slack.team_id, OPEN, ALICE), 6000)
        thread = await mention(bot, OPEN, "cheap please")
        answer = await wait_answer(fake_slack, thread, channel=OPEN)
    assert fake_llm.requests[-1].model == "gpt-5.1"
    assert "Answered by gpt-5.1: your daily token limit is 60% used." in answer


async def test_parley_usage_shows_my_use_and_cap_privately(
    start: Start, fake_slack: FakeSlack, fake_llm: FakeLLM, redis_client: aioredis.Redis
) -> None:
    policy = "default:\n  quota: {user_tokens_per_day: 200000}\n"
    async with start(policy) as bot:
        thread = await mention(bot, OPEN, "count me")
        await wait_answer(fake_slack, thread, channel=OPEN)
        me = Place("slack", fake_slack.team_id, OPEN, ALICE)
        await until_counted(bot.service.engine.governance, me, 1)
        await bot.post(fake_slack.slash_command("/parley", "usage", user=ALICE, channel=OPEN))
        await fake_slack.wait_for(lambda: fake_slack.responses, what="the usage answer")
    (response,) = fake_slack.responses
    assert response["response_type"] == "ephemeral"
    assert "in 1 answer." in response["text"]
    assert "Your daily cap: 200,000 tokens" in response["text"]
    assert len(fake_llm.requests) == 1  # `usage` is not a question for the model


async def test_a_failed_answer_gives_its_reservation_back(
    start: Start, fake_slack: FakeSlack, fake_llm: FakeLLM, redis_client: aioredis.Redis
) -> None:
    policy = "default:\n  quota: {user_tokens_per_day: 100000}\n"
    async with start(policy) as bot:
        governance = bot.service.engine.governance
        assert governance is not None
        place = Place("slack", fake_slack.team_id, OPEN, ALICE)
        fake_llm.enqueue(Error(400, "nope"))
        thread = await mention(bot, OPEN, "fail please")
        await refusal_in(fake_slack, OPEN, thread)
        loop = asyncio.get_running_loop()
        end = loop.time() + 10
        # The reservation is given back right after the failure is shown.
        while (used := await governance.ledger.headroom(place)) != [("user", 0, 100000)]:
            assert loop.time() < end, used
            await asyncio.sleep(0.02)
