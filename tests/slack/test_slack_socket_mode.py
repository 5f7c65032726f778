"""Socket Mode: the same app over slack_sdk's WebSocket client, against the fake Slack."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
import redis.asyncio as aioredis

from bot.service.serve import Service
from tests.fakes.llm_server import FakeLLM
from tests.fakes.slack_api import APP_TOKEN, BOT_USER_ID, FakeSlack
from tests.slack.conftest import slack_settings, started_service, wait_answer


@pytest.fixture
async def socket_service(
    fake_slack: FakeSlack, fake_llm: FakeLLM, redis_url: str, redis_client: aioredis.Redis
) -> AsyncIterator[Service]:
    """The bot on Socket Mode only (no signing secret), Alice known to the fake Slack, on
    an emptied Redis database (`redis_client`)."""
    settings = slack_settings(
        fake_slack, fake_llm, redis_url, slack_app_token=APP_TOKEN, slack_signing_secret=None
    )
    service = await started_service(settings)
    fake_slack.add_user("U0ALICE", "Alice")
    try:
        yield service
    finally:
        await service.shutdown()


async def acked(fake_slack: FakeSlack, envelope: str, what: str) -> None:
    await fake_slack.wait_for(
        lambda: any(ack.get("envelope_id") == envelope for ack in fake_slack.socket_acks),
        what=what,
    )


async def test_events_over_socket_mode_are_acked_and_answered(
    socket_service: Service, fake_slack: FakeSlack, fake_llm: FakeLLM
) -> None:
    message, body = fake_slack.person_says(
        "C0SOCK", f"<@{BOT_USER_ID}> over the socket", user="U0ALICE"
    )
    await acked(fake_slack, await fake_slack.push_socket(body), "the envelope's ack")
    text = await wait_answer(fake_slack, message.ts, channel="C0SOCK")
    assert text == "You said: Alice: over the socket"
    assert fake_slack.calls_to("apps.connections.open")[0].token == APP_TOKEN

    # The same event again (Slack retries unacked envelopes): acked, not answered.
    await fake_slack.push_socket(body)
    await fake_slack.wait_for(lambda: len(fake_slack.socket_acks) == 2, what="2nd ack")
    later, body = fake_slack.person_says("C0SOCK", f"<@{BOT_USER_ID}> later", user="U0ALICE")
    await fake_slack.push_socket(body)
    await wait_answer(fake_slack, later.ts, channel="C0SOCK")
    assert len(fake_llm.requests) == 2
    assert len(fake_slack.bot_messages("C0SOCK", message.ts)) == 1
    async with aiohttp.ClientSession() as http:
        url = f"http://127.0.0.1:{socket_service.port}/slack/events"
        async with http.post(url, data="{}") as response:
            assert response.status == 404  # no HTTP endpoint without a signing secret


async def test_a_mentions_twin_over_socket_mode_is_acked_and_dropped(
    socket_service: Service, fake_slack: FakeSlack, fake_llm: FakeLLM
) -> None:
    """Socket Mode requests don't pass the HTTP endpoint: the gate's middleware drops it."""
    alone, mention = fake_slack.person_says(
        "C0SOCK", f"<@{BOT_USER_ID}> only the twin comes", user="U0ALICE"
    )
    twin = fake_slack.event({**mention["event"], "type": "message", "channel_type": "channel"})
    await acked(fake_slack, await fake_slack.push_socket(twin), "the twin's ack")
    later, body = fake_slack.person_says("C0SOCK", f"<@{BOT_USER_ID}> later", user="U0ALICE")
    await fake_slack.push_socket(body)
    assert await wait_answer(fake_slack, later.ts, channel="C0SOCK") == "You said: Alice: later"
    assert fake_slack.bot_messages("C0SOCK", alone.ts) == []
    assert len(fake_llm.requests) == 1
