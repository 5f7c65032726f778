"""Fixtures of the Slack tests: the fake Slack, and the real Web API client pointed at it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack import status
from adapters.slack.client import make_client
from adapters.slack.sink import SlackSink
from bot.service.serve import Service
from bot.settings import Settings
from tests.fakes.llm_server import FakeLLM
from tests.fakes.slack_api import BOT_TOKEN, SIGNING_SECRET, FakeSlack


@pytest.fixture(autouse=True)
def status_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The "thinking" status is shown without its grace: most tests know an answer has
    ended by its status being cleared (`wait_answer`). Tests of the grace set their own."""
    monkeypatch.setattr(status, "STATUS_GRACE", 0.0)


@pytest.fixture(autouse=True)
def stream_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Answers stream from their first token, as an answer longer than the first update's
    delay does: the fake model's answers are short. Tests of the delay set their own."""
    monkeypatch.setattr(SlackSink, "first_update_delay", 0.0)


@pytest.fixture
async def fake_slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as fake:
        yield fake


@pytest.fixture
async def slack_client(fake_slack: FakeSlack) -> AsyncIterator[AsyncWebClient]:
    client = make_client(BOT_TOKEN, fake_slack.api_url)
    client.session = aiohttp.ClientSession()
    try:
        yield client
    finally:
        await client.session.close()


def indicator_clears(fake: FakeSlack, channel: str, thread: str | None) -> int:
    """How many answers in `thread` have ended: each clears its status or its reaction."""
    cleared = fake.statuses.get((channel, thread), []).count("") if thread else 0
    for call in fake.calls_to("reactions.remove"):
        if call.args["channel"] != channel:
            continue
        question = next(m for m in fake.messages if m.ts == call.args["timestamp"])
        if thread is None or thread in (question.thread_ts, question.ts):
            cleared += 1
    return cleared


async def wait_answer(
    fake: FakeSlack, thread: str | None, *, channel: str, answers: int = 1
) -> str:
    """The bot's messages in `thread` once `answers` answers there have ended."""
    await fake.wait_for(
        lambda: indicator_clears(fake, channel, thread) >= answers,
        what=f"{answers} answer(s) in {thread}",
    )
    return fake.thread_text(channel, thread)


@dataclass
class SlackBot:
    """`parley serve` with Slack in HTTP mode, wired to the fake Slack and the fake model."""

    fake: FakeSlack
    llm: FakeLLM
    service: Service
    http: aiohttp.ClientSession

    @property
    def events_url(self) -> str:
        return f"http://127.0.0.1:{self.service.port}/slack/events"

    async def post(
        self,
        body: dict[str, Any] | str,
        *,
        retry_num: int | None = None,
        secret: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, float, str]:
        """Post a signed request; the HTTP status, the seconds until the ack, the body."""
        raw, signed = self.fake.signed_request(body, retry_num=retry_num, secret=secret)
        started = time.perf_counter()
        async with self.http.post(self.events_url, data=raw, headers=headers or signed) as resp:
            text = await resp.text()
            return resp.status, time.perf_counter() - started, text


def slack_settings(fake: FakeSlack, llm: FakeLLM, redis_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "slack_bot_token": BOT_TOKEN,
        "slack_signing_secret": SIGNING_SECRET,
        "slack_api_url": fake.api_url,
        "slack_file_hosts": ["127.0.0.1"],
        "evolink_base_url": llm.base_url,
        "evolink_fallback_base_url": llm.base_url,
        "evolink_api_key": llm.api_key,
        "redis_url": redis_url,
        "bot_tools": False,
        "bot_shutdown_grace": 1.0,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


async def started_service(settings: Settings) -> Service:
    service = Service(settings)
    await service.start(host="127.0.0.1", port=0)
    (platform,) = service.platforms
    loop = asyncio.get_running_loop()
    end = loop.time() + 10
    while not platform.ready():
        if loop.time() > end:
            await service.shutdown()
            raise AssertionError("the Slack platform never became ready")
        await asyncio.sleep(0.01)
    return service


@pytest.fixture
async def slack_bot(
    fake_slack: FakeSlack,
    fake_llm: FakeLLM,
    redis_url: str,
    redis_client: aioredis.Redis,
) -> AsyncIterator[SlackBot]:
    service = await started_service(slack_settings(fake_slack, fake_llm, redis_url))
    try:
        async with aiohttp.ClientSession() as http:
            yield SlackBot(fake_slack, fake_llm, service, http)
    finally:
        await service.shutdown()
