"""Shared fixtures: a Redis database of the suite's own, flushed around each test.

The Redis is `PARLEY_TEST_REDIS_URL` when it is set; otherwise the suite starts a
throwaway `redis-server` of its own (free loopback port, nothing on disk) on first use
and kills it at the end.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis

from tests.fakes.llm_server import FakeLLM, FakeLLMPair
from tests.redis_servers import RedisProcess, free_port, have_redis_server

GIVEN_REDIS_URL = os.environ.get("PARLEY_TEST_REDIS_URL")
NO_REDIS = (
    "The tests need Redis: install redis-server (apt-get install redis-server) "
    "or set PARLEY_TEST_REDIS_URL to a Redis whose database the suite may flush."
)


def pytest_configure(config: pytest.Config) -> None:
    if not GIVEN_REDIS_URL and not have_redis_server():
        pytest.exit(NO_REDIS, returncode=pytest.ExitCode.USAGE_ERROR)


@pytest.fixture(scope="session")
def _suite_redis_url() -> Iterator[str]:
    if GIVEN_REDIS_URL:
        yield GIVEN_REDIS_URL
        return
    server = RedisProcess(free_port())
    try:
        # A database of the suite's own, as with a given Redis (see the README).
        yield f"{server.url}/13"
    finally:
        server.stop()


@pytest.fixture
def redis_url(_suite_redis_url: str) -> str:
    return _suite_redis_url


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
