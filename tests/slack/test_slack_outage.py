"""Slack while Redis is down, the reset command, and the store's work per thread reply."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest
import redis.asyncio as aioredis
from redis.asyncio.connection import Connection

from bot.intake.steps import RESET_DONE
from tests.fakes.llm_server import FakeLLM
from tests.fakes.slack_api import BOT_USER_ID, FakeSlack
from tests.slack.conftest import SlackBot, slack_settings, started_service, wait_answer

CHANNEL = "C0GENERAL"
ALICE = "U0ALICE"
MENTION = f"<@{BOT_USER_ID}>"
UNAVAILABLE = "temporarily unavailable"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def own_redis() -> AsyncIterator[tuple[str, asyncio.subprocess.Process]]:
    """A redis-server of this test's own, which the test may kill."""
    server = shutil.which("redis-server")
    if server is None:
        pytest.fail("redis-server is not on the PATH")
    port = _free_port()
    process = await asyncio.create_subprocess_exec(
        server, "--port", str(port), "--save", "", "--appendonly", "no",
        stdout=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    client: aioredis.Redis = aioredis.from_url(url)
    try:
        for _ in range(500):
            with contextlib.suppress(OSError, aioredis.ConnectionError):
                if await client.ping():
                    break
            await asyncio.sleep(0.01)
        yield url, process
    finally:
        await client.aclose()
        if process.returncode is None:
            process.kill()
            await process.wait()


@pytest.fixture
async def bot_on_own_redis(
    fake_slack: FakeSlack,
    fake_llm: FakeLLM,
    own_redis: tuple[str, asyncio.subprocess.Process],
) -> AsyncIterator[tuple[SlackBot, asyncio.subprocess.Process]]:
    """The bot on `own_redis`, Alice known to the fake Slack; and that Redis, to kill."""
    url, redis_process = own_redis
    fake_slack.add_user(ALICE, "Alice")
    service = await started_service(slack_settings(fake_slack, fake_llm, url))
    try:
        async with aiohttp.ClientSession() as http:
            yield SlackBot(fake_slack, fake_llm, service, http), redis_process
    finally:
        await service.shutdown()


async def test_redis_down_one_notice_per_message_none_dropped(
    bot_on_own_redis: tuple[SlackBot, asyncio.subprocess.Process],
    fake_slack: FakeSlack,
    fake_llm: FakeLLM,
) -> None:
    bot, redis_process = bot_on_own_redis
    before, body = fake_slack.person_says(CHANNEL, f"{MENTION} remember me", user=ALICE)
    await bot.post(body)
    await wait_answer(fake_slack, before.ts, channel=CHANNEL)

    redis_process.kill()
    await redis_process.wait()

    message, mention = fake_slack.person_says(CHANNEL, f"{MENTION} still there?", user=ALICE)
    twin = fake_slack.event({**mention["event"], "type": "message", "channel_type": "channel"})
    _, reply = fake_slack.person_says(
        CHANNEL, "and now?", user=ALICE, thread_ts=before.ts, kind="message"
    )
    root = fake_slack.add_message(CHANNEL, "not the bot's thread", user=ALICE)
    _, elsewhere = fake_slack.person_says(
        CHANNEL, "chatter", user=ALICE, thread_ts=root.ts, kind="message"
    )
    results = await asyncio.gather(*(bot.post(b) for b in (mention, twin, reply, elsewhere)))
    assert [status for status, _, _ in results] == [200, 200, 200, 200]

    def notices(thread: str) -> list[str]:
        return [m.text for m in fake_slack.bot_messages(CHANNEL, thread) if UNAVAILABLE in m.text]

    await fake_slack.wait_for(
        lambda: notices(message.ts) and notices(before.ts), what="both notices"
    )
    await bot.service.engine.drain(10)  # every event's work has ended
    assert len(notices(message.ts)) == 1
    assert len(notices(before.ts)) == 1
    assert fake_slack.bot_messages(CHANNEL, root.ts) == []
    assert len(fake_llm.requests) == 1


async def test_an_answer_posted_just_before_redis_goes_down_stands_without_a_notice(
    bot_on_own_redis: tuple[SlackBot, asyncio.subprocess.Process], fake_slack: FakeSlack
) -> None:
    bot, redis_process = bot_on_own_redis
    posted = fake_slack.hold("chat.stopStream")  # the answer's final text
    message, body = fake_slack.person_says(CHANNEL, f"{MENTION} hello", user=ALICE)
    await bot.post(body)
    # The answer is on its way to Slack; Redis dies before it can be stored.
    await fake_slack.wait_for(
        lambda: fake_slack.calls_to("chat.stopStream"), what="the answer's final text"
    )
    redis_process.kill()
    await redis_process.wait()
    posted.set()
    await bot.service.engine.drain(10)  # storing it has been tried and has failed
    texts = [m.text for m in fake_slack.bot_messages(CHANNEL, message.ts)]
    assert texts == ["You said: Alice: hello"]


async def test_reset_in_a_thread_starts_over(slack_bot: SlackBot) -> None:
    fake = slack_bot.fake
    fake.add_user(ALICE, "Alice")
    message, body = fake.person_says(CHANNEL, f"{MENTION} my name is Alice", user=ALICE)
    await slack_bot.post(body)
    await wait_answer(fake, message.ts, channel=CHANNEL)

    _, reset = fake.person_says(
        CHANNEL, f"{MENTION} start over", user=ALICE, thread_ts=message.ts, kind="app_mention"
    )
    await slack_bot.post(reset)
    await fake.wait_for(
        lambda: any(m.text == RESET_DONE for m in fake.bot_messages(CHANNEL, message.ts)),
        what="the reset confirmation",
    )
    _, after = fake.person_says(
        CHANNEL, f"{MENTION} what is my name?", user=ALICE, thread_ts=message.ts
    )
    await slack_bot.post(after)
    await wait_answer(fake, message.ts, channel=CHANNEL, answers=2)  # the reset shows none
    history = slack_bot.llm.requests[-1].body["messages"]
    assert [m["content"] for m in history[1:]][-1] == "Alice: what is my name?"
    assert "my name is Alice" not in str(history)
    assert len(slack_bot.llm.requests) == 2


async def test_a_thread_reply_asks_the_store_whether_it_is_held_once(
    slack_bot: SlackBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = slack_bot.fake
    fake.add_user(ALICE, "Alice")
    message, body = fake.person_says(CHANNEL, f"{MENTION} hello", user=ALICE)
    await slack_bot.post(body)
    await wait_answer(fake, message.ts, channel=CHANNEL)

    sent: list[bytes] = []
    original = Connection.send_packed_command

    async def counting(self: Connection, command: object, check_health: bool = True) -> None:
        parts = command if isinstance(command, list) else [command]
        sent.append(b"".join(p if isinstance(p, bytes) else bytes(p) for p in parts))  # type: ignore[arg-type]
        await original(self, command, check_health)  # type: ignore[arg-type]

    monkeypatch.setattr(Connection, "send_packed_command", counting)
    _, reply = fake.person_says(CHANNEL, "more", user=ALICE, thread_ts=message.ts, kind="message")
    await slack_bot.post(reply)
    await wait_answer(fake, message.ts, channel=CHANNEL, answers=2)
    await slack_bot.service.engine.drain(10)
    monkeypatch.undo()
    exists = sum(packet.count(b"EXISTS") for packet in sent)
    assert exists == 1
    print(f"Redis round trips for a thread reply: {len(sent)}")
