"""Tools seen and controlled in Slack, through the real bolt app: the fake model asks for
the fake MCP server's tools (stdio, configured by BOT_MCP_CONFIG); task cards stream in
the answer; destructive tools wait for the asker's Approve, from any replica."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis

from adapters.slack.approval import APPROVE, DENY
from bot.service.serve import Service
from tests.fakes.llm_server import FakeLLM, FakeToolCall, Reply
from tests.fakes.slack_api import BOT_TOKEN, FakeSlack, Message
from tests.slack.conftest import SlackBot, slack_settings, started_service, wait_answer
from tests.untrusted import unwrapped

ASKER = "U0ASKER"
STRANGER = "U0OTHER"


def mcp_config(tmp_path: Path) -> str:
    path = tmp_path / "mcp.json"
    server = {
        "command": sys.executable,
        "args": ["-m", "tests.fakes.mcp_server", "--ready-file", str(tmp_path / "fake.pid")],
        "env": {"PYTHONPATH": os.getcwd()},
    }
    path.write_text(json.dumps({"mcpServers": {"fake": server}}))
    return str(path)


async def until(condition: Callable[[], Awaitable[bool]], within: float = 60) -> None:
    """Wait for something another process brings about (an MCP server listing its tools)."""
    async with asyncio.timeout(within):
        while not await condition():  # noqa: ASYNC110
            await asyncio.sleep(0.05)


async def tools_listed(service: Service) -> None:
    async def listed() -> bool:
        return "fake__lookup" in await service.engine.toolbox.available()

    await until(listed)


async def tool_service(
    fake: FakeSlack, llm: FakeLLM, redis_url: str, tmp_path: Path, **overrides: Any
) -> Service:
    settings = slack_settings(
        fake, llm, redis_url, bot_tools=True, bot_mcp_config=mcp_config(tmp_path), **overrides
    )
    service = await started_service(settings)
    await tools_listed(service)
    return service


@pytest.fixture
async def tool_bot(
    fake_slack: FakeSlack,
    fake_llm: FakeLLM,
    redis_url: str,
    redis_client: aioredis.Redis,
    tmp_path: Path,
) -> AsyncIterator[SlackBot]:
    service = await tool_service(fake_slack, fake_llm, redis_url, tmp_path)
    try:
        async with aiohttp.ClientSession() as http:
            yield SlackBot(fake_slack, fake_llm, service, http)
    finally:
        await service.shutdown()


def calls_then(llm: FakeLLM, name: str, args: str, call_id: str, answer: str) -> None:
    """The model's next answer: first it calls `name`, then it says `answer`."""
    llm.enqueue(Reply("", tool_calls=[FakeToolCall(name, args, call_id)]), Reply(answer))


def tool_results(llm: FakeLLM) -> dict[str, str]:
    """What each tool call returned to the model in the last request, by call id."""
    sent = llm.requests[-1].body["messages"]
    return {m["tool_call_id"]: unwrapped(m["content"]) for m in sent if m["role"] == "tool"}


async def ask(bot: SlackBot, text: str, *, channel: str = "C1") -> Message:
    question, event = bot.fake.person_says(channel, f"<@U0BOT> {text}", user=ASKER)
    status, _, _ = await bot.post(event)
    assert status == 200
    return question


async def approval_message(fake: FakeSlack, thread: str, channel: str = "C1") -> Message:
    def find() -> Message | None:
        return next((m for m in fake.bot_messages(channel, thread) if m.blocks), None)

    await fake.wait_for(lambda: find() is not None, what="the approval buttons")
    found = find()
    assert found is not None
    return found


def button_value(message: Message) -> str:
    actions = next(b for b in message.blocks if b["type"] == "actions")
    return str(actions["elements"][0]["value"])


async def press(
    bot: SlackBot, message: Message, action: str, user: str, url: str | None = None
) -> None:
    body = bot.fake.block_action(message, action, button_value(message), user=user)
    raw, headers = bot.fake.signed_request(body)
    async with bot.http.post(url or bot.events_url, data=raw, headers=headers) as response:
        assert response.status == 200


async def test_results_reach_the_model_and_task_cards_stream_in_order(tool_bot: SlackBot) -> None:
    fake, llm = tool_bot.fake, tool_bot.llm
    calls_then(llm, "fake__lookup", '{"key": "a"}', "c1", "It is a.")
    question = await ask(tool_bot, "look a up")
    text = await wait_answer(fake, question.ts, channel="C1")
    assert tool_results(llm)["c1"].startswith("value of a from pid")
    assert "It is a." in text and "Tools used: fake__lookup" in text
    cards = [u for u in fake.task_updates if u["id"] == "c1"]
    assert [u["status"] for u in cards] == ["pending", "in_progress", "complete"]
    assert cards[0]["title"] == "fake__lookup" and cards[0]["details"] == 'key="a"'
    assert cards[-1]["output"].startswith("value of a")
    (answer,) = fake.bot_messages("C1", question.ts)  # the cards and the text: one message
    assert not answer.streaming


async def test_where_task_cards_are_refused_the_status_line_shows_the_tool(
    tool_bot: SlackBot,
) -> None:
    fake, llm = tool_bot.fake, tool_bot.llm
    fake.refuse_task_chunks = "invalid_chunks"
    calls_then(llm, "fake__lookup", '{"key": "b"}', "c1", "B.")
    question = await ask(tool_bot, "look b up")
    text = await wait_answer(fake, question.ts, channel="C1")
    assert "B." in text and not fake.task_updates
    sent = [c.args.get("markdown_text") for c in fake.calls if c.method.startswith("chat.")]
    assert '_Using fake__lookup(key="b")…_' in sent  # in the message until the answer came
    (answer,) = fake.bot_messages("C1", question.ts)
    assert answer.text.startswith("B.")
    statuses = fake.statuses[("C1", question.ts)]
    assert 'Using fake__lookup(key="b")…' in statuses
    assert any(s.startswith("Used fake__lookup: value of b") for s in statuses)


async def test_only_the_asker_approves_and_then_the_tool_runs(tool_bot: SlackBot) -> None:
    fake, llm = tool_bot.fake, tool_bot.llm
    calls_then(llm, "fake__delete_item", '{"item": "x"}', "d1", "Deleted x.")
    question = await ask(tool_bot, "delete x")
    buttons = await approval_message(fake, question.ts)
    assert f"<@{ASKER}>" in buttons.text and "fake__delete_item" in buttons.text
    await press(tool_bot, buttons, APPROVE, STRANGER)
    await fake.wait_for(lambda: fake.ephemerals, what="the stranger's private notice")
    assert fake.ephemerals[0]["user"] == STRANGER
    assert fake.ephemerals[0]["text"] == f"Only <@{ASKER}> can approve this."
    assert len(llm.requests) == 1  # still waiting: the stranger decided nothing
    await press(tool_bot, buttons, APPROVE, ASKER)
    text = await wait_answer(fake, question.ts, channel="C1")
    assert tool_results(llm) == {"d1": "deleted x"}
    assert "Deleted x." in text
    assert f"Approved by <@{ASKER}>" in buttons.text and not buttons.blocks
    statuses = [u["status"] for u in fake.task_updates if u["id"] == "d1"]
    assert statuses == ["pending", "pending", "in_progress", "complete"]


async def test_deny_tells_the_model_it_was_refused_and_no_secret_is_shown(
    tool_bot: SlackBot,
) -> None:
    fake, llm = tool_bot.fake, tool_bot.llm
    args = json.dumps({"item": f"y {BOT_TOKEN}"})
    calls_then(llm, "fake__delete_item", args, "d1", "I didn't delete it.")
    question = await ask(tool_bot, "delete y")
    buttons = await approval_message(fake, question.ts)
    assert "y " in buttons.text and BOT_TOKEN not in json.dumps(buttons.blocks)
    await press(tool_bot, buttons, DENY, ASKER)
    text = await wait_answer(fake, question.ts, channel="C1")
    assert all(BOT_TOKEN not in json.dumps(update) for update in fake.task_updates)
    assert tool_results(llm)["d1"].startswith("Error: fake__delete_item changes something")
    assert "I didn't delete it." in text and "Tools used" not in text


async def test_a_click_reaching_another_replica_releases_the_waiting_one(
    tool_bot: SlackBot, redis_url: str, tmp_path: Path
) -> None:
    fake, llm = tool_bot.fake, tool_bot.llm
    other = await started_service(slack_settings(fake, llm, redis_url, bot_tools=True))
    try:
        calls_then(llm, "fake__delete_item", '{"item": "z"}', "d1", "Done.")
        question = await ask(tool_bot, "delete z")
        buttons = await approval_message(fake, question.ts)
        elsewhere = f"http://127.0.0.1:{other.port}/slack/events"
        await press(tool_bot, buttons, APPROVE, ASKER, url=elsewhere)
        await wait_answer(fake, question.ts, channel="C1")
        assert tool_results(llm) == {"d1": "deleted z"}
    finally:
        await other.shutdown()


async def test_the_policy_decides_per_channel_which_tools_are_offered_and_approved(
    fake_slack: FakeSlack,
    fake_llm: FakeLLM,
    redis_url: str,
    redis_client: aioredis.Redis,
    tmp_path: Path,
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "channels:\n"
        '  "slack:C2":\n'
        '    tools: ["fake__report"]\n'
        '    approve_tools: ["fake__report"]\n'
    )
    service = await tool_service(
        fake_slack, fake_llm, redis_url, tmp_path, bot_policy_file=str(policy)
    )
    try:
        async with aiohttp.ClientSession() as http:
            bot = SlackBot(fake_slack, fake_llm, service, http)
            calls_then(fake_llm, "fake__lookup", '{"key": "a"}', "c1", "Not here.")
            question = await ask(bot, "look a up", channel="C2")
            await wait_answer(fake_slack, question.ts, channel="C2")
            offered = [t["function"]["name"] for t in fake_llm.requests[0].body["tools"]]
            assert offered == ["fake__report"]
            assert tool_results(fake_llm) == {"c1": "Error: There is no tool named 'fake__lookup'."}
            calls_then(fake_llm, "fake__report", "{}", "r1", "Asked.")
            question = await ask(bot, "count", channel="C2")
            buttons = await approval_message(fake_slack, question.ts, channel="C2")
            await press(bot, buttons, DENY, ASKER)  # approve_tools asked before it ran
            await wait_answer(fake_slack, question.ts, channel="C2")
            assert tool_results(fake_llm)["r1"].startswith("Error: fake__report changes")
            question = await ask(bot, "look a up elsewhere", channel="C1")
            await wait_answer(fake_slack, question.ts, channel="C1")
            offered = [t["function"]["name"] for t in fake_llm.requests[-1].body["tools"]]
            assert "fake__lookup" in offered and "fetch_url" in offered
    finally:
        await service.shutdown()


async def test_a_server_killed_mid_conversation_fails_the_call_not_the_answer(
    tool_bot: SlackBot, tmp_path: Path
) -> None:
    fake, llm = tool_bot.fake, tool_bot.llm
    pid = int((tmp_path / "fake.pid").read_text())
    calls_then(llm, "fake__slow", '{"seconds": 60}', "s1", "The server went away.")
    question = await ask(tool_bot, "be slow")
    await fake.wait_for(
        lambda: any(u["status"] == "in_progress" for u in fake.task_updates),
        what="the slow call running",
    )
    os.kill(pid, signal.SIGKILL)
    text = await wait_answer(fake, question.ts, channel="C1")
    assert tool_results(llm)["s1"].startswith("Error:")
    assert "The server went away." in text
    assert [u["status"] for u in fake.task_updates if u["id"] == "s1"][-1] == "error"

    async def restarted() -> bool:
        path = tmp_path / "fake.pid"
        return (
            path.exists()
            and path.read_text() != str(pid)
            and bool(await tool_bot.service.engine.toolbox.available())
        )

    await until(restarted)


async def test_a_server_that_is_down_at_start_blocks_neither_readiness_nor_answers(
    fake_slack: FakeSlack,
    fake_llm: FakeLLM,
    redis_url: str,
    redis_client: aioredis.Redis,
    tmp_path: Path,
) -> None:
    config = tmp_path / "mcp.json"
    missing = {"command": str(tmp_path / "no-such-server")}
    config.write_text(json.dumps({"mcpServers": {"gone": missing}}))
    settings = slack_settings(
        fake_slack, fake_llm, redis_url, bot_tools=True, bot_mcp_config=str(config)
    )
    service = await started_service(settings)
    try:
        async with aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{service.port}/readyz"
            async with http.get(url) as response:
                assert response.status == 200
            bot = SlackBot(fake_slack, fake_llm, service, http)
            question = await ask(bot, "hello")
            text = await wait_answer(fake_slack, question.ts, channel="C1")
            assert "You said" in text
            offered = [t["function"]["name"] for t in fake_llm.requests[-1].body["tools"]]
            assert "fetch_url" in offered and not any(n.startswith("gone__") for n in offered)
    finally:
        await service.shutdown()


async def test_a_policy_admin_may_approve_for_the_asker(
    fake_slack: FakeSlack,
    fake_llm: FakeLLM,
    redis_url: str,
    redis_client: aioredis.Redis,
    tmp_path: Path,
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text('admins: ["slack:U0ADMIN"]\n')
    service = await tool_service(
        fake_slack, fake_llm, redis_url, tmp_path, bot_policy_file=str(policy)
    )
    try:
        async with aiohttp.ClientSession() as http:
            bot = SlackBot(fake_slack, fake_llm, service, http)
            calls_then(fake_llm, "fake__delete_item", '{"item": "w"}', "d1", "Gone.")
            question = await ask(bot, "delete w")
            buttons = await approval_message(fake_slack, question.ts)
            await press(bot, buttons, APPROVE, "U0ADMIN")
            await wait_answer(fake_slack, question.ts, channel="C1")
            assert tool_results(fake_llm) == {"d1": "deleted w"}
            assert "Approved by <@U0ADMIN>" in buttons.text and not fake_slack.ephemerals
    finally:
        await service.shutdown()
