"""`parley` as a user runs it: real subprocesses, the fake model, a real Redis."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as aioredis
from PIL import Image

from bot.service.serve import Service
from bot.settings import Settings
from tests.fakes.llm_server import FakeLLM

# Settings a developer's own .env or environment must not leak into these runs.
_OURS = ("EVOLINK_", "BOT_", "SLACK_", "DISCORD_", "REDIS_URL", "PORT", "LOG_LEVEL")


def _env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_OURS)}
    env.update(overrides)
    return env


async def _run(
    *args: str, env: dict[str, str], stdin: bytes = b"", cwd: Path | None = None
) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=cwd,
    )
    # Waits for the process to end, however loaded the machine (pytest-timeout ends a hang).
    out, err = await process.communicate(stdin)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_serve_without_a_platform_exits_2_and_says_what_to_set(tmp_path: Path) -> None:
    code, out, err = await _run("serve", env=_env(EVOLINK_API_KEY="k"), cwd=tmp_path)
    assert code == 2
    assert "SLACK_BOT_TOKEN" in err and "DISCORD_BOT_TOKEN" in err and "parley chat" in err
    assert "Traceback" not in err + out


async def test_serve_without_an_api_key_exits_2(tmp_path: Path) -> None:
    code, _, err = await _run("serve", env=_env(DISCORD_BOT_TOKEN="x"), cwd=tmp_path)
    assert code == 2 and "EVOLINK_API_KEY is not set" in err and "Traceback" not in err


async def test_invalid_setting_is_named_without_a_traceback(tmp_path: Path) -> None:
    code, _, err = await _run("chat", env=_env(BOT_TEMPERATURE="7"), cwd=tmp_path)
    assert code == 2 and "BOT_TEMPERATURE" in err and "Traceback" not in err


async def test_piped_chat_answers_each_line_with_history_and_images(
    fake_llm: FakeLLM, redis_url: str, redis_client: aioredis.Redis, tmp_path: Path
) -> None:
    picture = tmp_path / "cat.bmp"
    Image.new("RGB", (3, 3), "white").save(picture, format="BMP")
    env = _env(
        EVOLINK_BASE_URL=fake_llm.base_url,
        EVOLINK_API_KEY=fake_llm.api_key or "",
        REDIS_URL=redis_url,
        USER="tester",
    )
    script = f"What is Redis?\n/image {picture}\nwhat is this?\n/model gpt-5.1\nthanks\n"
    code, out, err = await _run("chat", "--new", env=env, stdin=script.encode(), cwd=tmp_path)
    assert code == 0, err
    assert "You said: What is Redis?" in out  # no local user name
    assert "Attached cat.bmp" in out
    assert "You said: what is this? [image]" in out
    assert [r.model for r in fake_llm.requests] == ["gpt-5.5", "gpt-5.5", "gpt-5.1"]
    assert fake_llm.requests[1].image_urls[0].startswith("data:image/png;base64,")
    last = fake_llm.requests[-1].body["messages"]
    assert [m["role"] for m in last] == ["system", "user", "assistant", "user", "assistant", "user"]

    # The conversation is in Redis: a later run carries on.
    code, out, _ = await _run("chat", env=env, stdin=b"still there?\n", cwd=tmp_path)
    assert code == 0 and len(fake_llm.requests[-1].body["messages"]) == 8


async def test_chat_error_is_shown_not_raised(fake_llm: FakeLLM, tmp_path: Path) -> None:
    from tests.fakes.llm_server import Error

    fake_llm.enqueue(Error(402))
    env = _env(EVOLINK_BASE_URL=fake_llm.base_url, EVOLINK_API_KEY=fake_llm.api_key or "")
    code, out, err = await _run("chat", env=env, stdin=b"hi\n", cwd=tmp_path)
    assert code == 0
    assert "quota is used up" in out and "Traceback" not in err
    assert "not kept across restarts" in err  # the embedded store says so once


@pytest.fixture
async def service(
    fake_llm: FakeLLM, redis_url: str, redis_client: aioredis.Redis
) -> AsyncIterator[Service]:
    settings = Settings(
        _env_file=None,
        evolink_base_url=fake_llm.base_url,
        redis_url=redis_url,
    )
    service = Service(settings)
    await service.start(host="127.0.0.1", port=0)
    yield service
    await service.shutdown()


async def test_health_readiness_and_metrics(service: Service) -> None:
    base = f"http://127.0.0.1:{service.port}"
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/healthz") as response:
            assert response.status == 200
        async with http.get(f"{base}/readyz") as response:
            assert response.status == 200
            assert (await response.json())["checks"] == {"redis": True}
        async with http.get(f"{base}/metrics") as response:
            assert response.status == 200
            text = await response.text()
            assert "parley_answers_in_flight" in text
            assert "parley_time_to_first_token_seconds_bucket" in text


async def test_readyz_is_503_while_redis_is_down(fake_llm: FakeLLM) -> None:
    settings = Settings(
        _env_file=None, evolink_base_url=fake_llm.base_url, redis_url="redis://127.0.0.1:1/0"
    )
    service = Service(settings)
    await service.start(host="127.0.0.1", port=0)
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{service.port}/readyz") as response:
                assert response.status == 503
                assert (await response.json())["checks"]["redis"] is False
    finally:
        await service.shutdown()
