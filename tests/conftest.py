"""Shared fixtures: a real Redis database of the suite's own, flushed around each test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis

from tests.fakes.llm_server import FakeLLM, FakeLLMPair
from tests.redis_server import suite_redis


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """PARLEY_TEST_REDIS_URL, or a throwaway redis-server the suite starts (see the module)."""
    with suite_redis() as url:
        yield url


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client: aioredis.Redis = aioredis.from_url(redis_url)
    await client.flushdb()
    try:
        yield client
    finally:
        await client.flushdb()
        await client.aclose()


@pytest.fixture
async def fake_llm() -> AsyncIterator[FakeLLM]:
    """A fake chat-completions server; point EVOLINK_BASE_URL at `fake_llm.base_url`."""
    async with FakeLLM() as fake:
        yield fake


@pytest.fixture
async def fake_llm_pair() -> AsyncIterator[FakeLLMPair]:
    """Two fakes: `primary` for the base URL, `fallback` for the fallback base URL."""
    async with FakeLLM(name="primary") as primary, FakeLLM(name="fallback") as fallback:
        yield FakeLLMPair(primary, fallback)
