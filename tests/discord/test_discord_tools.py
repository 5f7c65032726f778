"""Tools seen and controlled in Discord, through the real discord.py client: a progress
line per call in the answer being edited, and persistent Approve/Deny buttons that only
the asker may press."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from adapters.discord.sink import tool_line
from bot.tools.base import ToolProgress, ToolState
from tests.discord.harness import DiscordBot, discord_bot
from tests.fakes.discord_api import FakeDiscord, Json
from tests.fakes.llm_server import FakeLLM
from tests.slack.test_slack_tools import calls_then, until
from tests.untrusted import unwrapped


def tool_results(llm: FakeLLM) -> dict[str, str]:
    sent = llm.requests[-1].body["messages"]
    return {m["tool_call_id"]: unwrapped(m["content"]) for m in sent if m["role"] == "tool"}


@pytest.fixture
async def bot(
    redis_client: aioredis.Redis, redis_url: str, tmp_path: Path
) -> AsyncIterator[DiscordBot]:
    config = tmp_path / "mcp.json"
    server = {
        "command": sys.executable,
        "args": ["-m", "tests.fakes.mcp_server"],
        "env": {"PYTHONPATH": os.getcwd()},
    }
    config.write_text(json.dumps({"mcpServers": {"fake": server}}))

    def configure(fake: FakeDiscord, world: dict[str, Any]) -> dict[str, Any]:
        return {"bot_tools": True, "bot_mcp_config": str(config)}

    async with discord_bot(redis_url, configure) as running:
        toolbox = running.service.engine.toolbox

        async def listed() -> bool:
            return "fake__lookup" in await toolbox.available()

        await until(listed)
        yield running
        running.assert_no_pings()


def buttons(message: Json) -> list[str]:
    return [c["custom_id"] for row in message.get("components", []) for c in row["components"]]


async def approval_message(bot: DiscordBot, thread: str) -> Json:
    def find() -> Json | None:
        return next((m for m in bot.discord.bot_messages(thread) if buttons(m)), None)

    await bot.discord.wait_until(lambda: find() is not None)
    found = find()
    assert found is not None
    return found


async def test_each_call_is_a_progress_line_in_the_answer(bot: DiscordBot) -> None:
    calls_then(bot.llm, "fake__slow", '{"seconds": 1}', "c1", "Took a while.")
    thread = await bot.ask("be slow")
    [answer] = await bot.answered(thread, text="Took a while.")
    assert tool_results(bot.llm)["c1"] == "finally"
    assert "-# Tools used: fake__slow" in answer["content"]
    shown = [b["content"] for b in bot.sent_messages()]
    assert "-# 🔧 fake__slow(seconds=1) …" in shown  # while it ran; the answer replaced it
    assert "🔧" not in answer["content"]


async def test_only_the_asker_approves_even_after_a_restart(bot: DiscordBot) -> None:
    calls_then(bot.llm, "fake__delete_item", '{"item": "x"}', "d1", "Deleted x.")
    thread = await bot.ask("delete x")
    message = await approval_message(bot, thread)
    approve, deny = buttons(message)
    assert approve.startswith("parley:tool:approve:") and deny.startswith("parley:tool:deny:")
    # As after a restart: no view of the posted message is in memory, only the
    # DynamicItem registered at start-up, which reads everything from the custom id.
    bot.platform.client._connection._view_store._views.clear()
    await bot.discord.press(message, approve, bot.bob)
    await bot.discord.wait_until(lambda: bool(bot.discord.ephemerals))
    assert bot.discord.ephemerals[0]["content"] == f"Only <@{bot.alice['id']}> can approve this."
    assert bot.discord.ephemerals[0]["user_id"] == str(bot.bob["id"])
    await bot.discord.press(message, approve, bot.alice)
    await bot.answered(thread, text="Deleted x.")
    assert tool_results(bot.llm) == {"d1": "deleted x"}
    assert f"Approved by <@{bot.alice['id']}>" in message["content"]
    assert not message["components"]


async def test_deny_tells_the_model(bot: DiscordBot) -> None:
    calls_then(bot.llm, "fake__delete_item", '{"item": "y"}', "d1", "Left it alone.")
    thread = await bot.ask("delete y")
    message = await approval_message(bot, thread)
    await bot.discord.press(message, buttons(message)[1], bot.alice)
    await bot.answered(thread, text="Left it alone.")
    assert tool_results(bot.llm)["d1"].startswith("Error: fake__delete_item changes something")


def test_a_tool_line_says_running_waiting_done_or_failed() -> None:
    def line(state: ToolState, summary: str = "") -> str:
        return tool_line(ToolProgress("c1", "fake__x", state, summary), 'item="y"')

    assert line("running") == '-# 🔧 fake__x(item="y") …'
    assert line("awaiting_approval") == '-# 🔧 fake__x(item="y") waiting for approval…'
    assert line("done", "deleted y") == '-# 🔧 fake__x(item="y") ✓'
    assert line("error", "no such item") == '-# 🔧 fake__x(item="y") ✗ no such item'
