"""One `auth.test` per process: bolt's authorization and the platform's readiness share it.

The service is started without waiting for readiness, with the fake Slack holding every
`auth.test` until the test releases it, so events arrive before the bot knows who it is.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import aiohttp
import pytest
import redis.asyncio as aioredis
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

from adapters.slack.platform import SlackPlatform
from bot.service.serve import Service
from tests.fakes.llm_server import FakeLLM
from tests.fakes.slack_api import BOT_USER_ID, FakeSlack
from tests.slack.conftest import SlackBot, slack_settings, wait_answer

CHANNEL = "C0GENERAL"
ALICE = "U0ALICE"
MENTION = f"<@{BOT_USER_ID}>"
BURST = 20


@dataclass
class Unready:
    """A bot just started, whose `auth.test` is held, and how many requests reached bolt."""

    bot: SlackBot
    platform: SlackPlatform
    released: asyncio.Event
    dispatched: Callable[[], int]


@pytest.fixture
async def unready(
    fake_slack: FakeSlack,
    fake_llm: FakeLLM,
    redis_url: str,
    redis_client: aioredis.Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Unready]:
    fake_slack.add_user(ALICE, "Alice")
    released = fake_slack.hold("auth.test")
    service = Service(slack_settings(fake_slack, fake_llm, redis_url))
    await service.start(host="127.0.0.1", port=0)
    (platform,) = service.platforms
    assert isinstance(platform, SlackPlatform)
    # Bolt runs a request without yielding until its authorization awaits auth.test, so
    # a request counted here is one waiting on that call.
    dispatched = 0
    dispatch = platform.app.async_dispatch

    async def counted(req: AsyncBoltRequest) -> BoltResponse:
        nonlocal dispatched
        dispatched += 1
        return await dispatch(req)

    monkeypatch.setattr(platform.app, "async_dispatch", counted)
    try:
        async with aiohttp.ClientSession() as http:
            bot = SlackBot(fake_slack, fake_llm, service, http)
            yield Unready(bot, platform, released, lambda: dispatched)
    finally:
        released.set()
        await service.shutdown()


async def test_a_burst_before_the_first_auth_test_answer_makes_one_call(
    unready: Unready,
) -> None:
    fake = unready.bot.fake
    asked = [fake.person_says(CHANNEL, f"{MENTION} question {i}", user=ALICE) for i in range(BURST)]
    posts = [asyncio.create_task(unready.bot.post(body)) for _, body in asked]
    await fake.wait_for(lambda: unready.dispatched() == BURST, what="every event in bolt")
    assert not unready.platform.ready()

    unready.released.set()
    assert [status for status, _, _ in await asyncio.gather(*posts)] == [200] * BURST
    for i, (message, _) in enumerate(asked):
        # The listener saw the bot's user id: its mention is gone from the question.
        text = await wait_answer(fake, message.ts, channel=CHANNEL)
        assert text == f"You said: Alice: question {i}"
    await fake.wait_for(unready.platform.ready, what="readiness")
    assert len(fake.calls_to("auth.test")) == 1


async def test_a_refused_auth_test_is_not_kept_and_the_next_request_asks_again(
    unready: Unready,
) -> None:
    fake = unready.bot.fake
    refused, first = fake.person_says(CHANNEL, f"{MENTION} too early", user=ALICE)
    post = asyncio.create_task(unready.bot.post(first))
    await fake.wait_for(lambda: unready.dispatched() == 1, what="the event in bolt")
    fake.refuse("auth.test", "fatal_error")
    unready.released.set()
    await post  # shares the platform's call, and its refusal
    assert len(fake.calls_to("auth.test")) == 1

    message, second = fake.person_says(CHANNEL, f"{MENTION} now", user=ALICE)
    assert (await unready.bot.post(second))[0] == 200
    assert await wait_answer(fake, message.ts, channel=CHANNEL) == "You said: Alice: now"
    await fake.wait_for(unready.platform.ready, what="readiness")  # its retry finds the answer
    assert len(fake.calls_to("auth.test")) == 2
    assert fake.bot_messages(CHANNEL, refused.ts) == []


async def test_a_twin_before_the_first_auth_test_answer_is_dropped_in_bolt(
    unready: Unready,
) -> None:
    """Before bolt, a twin can't be told from a message mentioning someone else; the
    gate's middleware, after authorization, drops it instead."""
    fake = unready.bot.fake
    early, mention = fake.person_says(CHANNEL, f"{MENTION} twin first", user=ALICE)
    twin = fake.event({**mention["event"], "type": "message", "channel_type": "channel"})
    post = asyncio.create_task(unready.bot.post(twin))
    await fake.wait_for(lambda: unready.dispatched() == 1, what="the twin in bolt")
    unready.released.set()
    assert (await post)[0] == 200

    message, later = fake.person_says(CHANNEL, f"{MENTION} later", user=ALICE)
    assert (await unready.bot.post(later))[0] == 200
    assert await wait_answer(fake, message.ts, channel=CHANNEL) == "You said: Alice: later"
    assert fake.bot_messages(CHANNEL, early.ts) == []
    assert len(unready.bot.llm.requests) == 1
