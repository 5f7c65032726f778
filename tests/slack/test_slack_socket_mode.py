"""Socket Mode: the same app over slack_sdk's WebSocket client, against the fake Slack."""

from __future__ import annotations

import aiohttp
import redis.asyncio as aioredis

from tests.fakes.llm_server import FakeLLM
from tests.fakes.slack_api import APP_TOKEN, BOT_USER_ID, FakeSlack
from tests.slack.conftest import slack_settings, started_service, wait_answer


async def test_events_over_socket_mode_are_acked_and_answered(
    fake_slack: FakeSlack, fake_llm: FakeLLM, redis_url: str, redis_client: aioredis.Redis
) -> None:
    settings = slack_settings(
        fake_slack, fake_llm, redis_url, slack_app_token=APP_TOKEN, slack_signing_secret=None
    )
    service = await started_service(settings)
    try:
        fake_slack.add_user("U0ALICE", "Alice")
        message, body = fake_slack.person_says(
            "C0SOCK", f"<@{BOT_USER_ID}> over the socket", user="U0ALICE"
        )
        envelope = await fake_slack.push_socket(body)
        await fake_slack.wait_for(
            lambda: any(ack.get("envelope_id") == envelope for ack in fake_slack.socket_acks),
            what="the envelope's ack",
        )
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
            url = f"http://127.0.0.1:{service.port}/slack/events"
            async with http.post(url, data="{}") as response:
                assert response.status == 404  # no HTTP endpoint without a signing secret
    finally:
        await service.shutdown()


async def test_a_mentions_twin_over_socket_mode_is_acked_and_dropped(
    fake_slack: FakeSlack, fake_llm: FakeLLM, redis_url: str, redis_client: aioredis.Redis
) -> None:
    """Socket Mode requests don't pass the HTTP endpoint: the gate's middleware drops it."""
    settings = slack_settings(
        fake_slack, fake_llm, redis_url, slack_app_token=APP_TOKEN, slack_signing_secret=None
    )
    service = await started_service(settings)
    try:
        fake_slack.add_user("U0ALICE", "Alice")
        alone, mention = fake_slack.person_says(
            "C0SOCK", f"<@{BOT_USER_ID}> only the twin comes", user="U0ALICE"
        )
        twin = fake_slack.event({**mention["event"], "type": "message", "channel_type": "channel"})
        envelope = await fake_slack.push_socket(twin)
        await fake_slack.wait_for(
            lambda: any(ack.get("envelope_id") == envelope for ack in fake_slack.socket_acks),
            what="the twin's ack",
        )
        later, body = fake_slack.person_says("C0SOCK", f"<@{BOT_USER_ID}> later", user="U0ALICE")
        await fake_slack.push_socket(body)
        assert await wait_answer(fake_slack, later.ts, channel="C0SOCK") == "You said: Alice: later"
        assert fake_slack.bot_messages("C0SOCK", alone.ts) == []
        assert len(fake_llm.requests) == 1
    finally:
        await service.shutdown()
