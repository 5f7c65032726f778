"""Fixtures of the Slack tests: the fake Slack, and the real Web API client pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.client import make_client
from tests.fakes.slack_api import BOT_TOKEN, FakeSlack


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
