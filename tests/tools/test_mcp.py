"""MCP servers' tools: the config file, and the fake MCP server over stdio and HTTP."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from bot.errors import ToolConfigError
from bot.settings import Settings
from bot.tools import ToolBox
from bot.tools.mcp_client import McpTimings, McpTools
from bot.tools.mcp_config import HttpServerConfig, StdioServerConfig, parse_mcp_config
from tests.fakes.llm_server import FakeLLM, FakeToolCall, closed_base_url
from tests.tools.test_tool_loop import ask_with_tools, tool_engine

FAST = McpTimings(connect=30, ping_interval=0.2, max_backoff=0.5, first_use_wait=30)
FAKE_TOOLS = {"lookup", "slow", "fail", "delete_item", "chart", "report", "grow"}


# -- the configuration file ---------------------------------------------------------


def test_config_in_the_standard_format_with_variables_from_the_environment() -> None:
    text = """{
  "mcpServers": {
    "files": {"command": "npx", "args": ["-y", "files"], "env": {"TOKEN": "${FILES_TOKEN}"}},
    "issues": {
      "url": "https://mcp.example.com/mcp",
      "headers": {"Authorization": "Bearer ${ISSUES_KEY}", "X-Team": "core"}
    }
  }
}"""
    servers = parse_mcp_config(text, {"FILES_TOKEN": "f1", "ISSUES_KEY": "k2"})
    assert servers == [
        StdioServerConfig("files", "npx", ("-y", "files"), {"TOKEN": "f1"}),
        HttpServerConfig(
            "issues",
            "https://mcp.example.com/mcp",
            {"Authorization": "Bearer k2", "X-Team": "core"},
        ),
    ]


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ('{"mcpServers": {\n  "a": {"command": "x",}\n}}', "line 2: invalid JSON"),
        ('{"servers": {}}', "line 1: expected"),
        ('{"mcpServers": {\n\n  "a": {"args": []}\n}}', "line 3: server 'a': needs exactly one"),
        ('{"mcpServers": {\n  "a": {"url": "ftp://x"}}}', "line 2: server 'a': \"url\" must be"),
        ('{"mcpServers": {\n "b c": {"command": "x"}}}', "line 2: server 'b c': names are"),
        ('{"mcpServers": {\n "a": {"command": "x", "cwd": "/"}}}', "unknown field 'cwd'"),
        (
            '{"mcpServers": {\n "a": {"command": "x"},\n "b": {"command": "y", '
            '"env": {"K": "${NOPE}"}}}}',
            "line 3: server 'b': env.K uses ${NOPE}, which is not set",
        ),
    ],
)
def test_config_errors_name_the_line(text: str, error: str) -> None:
    with pytest.raises(ToolConfigError) as raised:
        parse_mcp_config(text, {}, "mcp.json")
    assert f"mcp.json, {error}" in str(raised.value) or error in str(raised.value)
    assert str(raised.value).startswith("mcp.json, line ")


# -- the fake server over stdio -----------------------------------------------------


def _stdio(tmp_path: Path, name: str = "fake") -> StdioServerConfig:
    return StdioServerConfig(
        name,
        sys.executable,
        ("-m", "tests.fakes.mcp_server", "--ready-file", str(tmp_path / f"{name}.pid")),
        {"FAKE_MCP_TOKEN": "t0k", "PYTHONPATH": os.getcwd()},
    )


async def _until(condition: Callable[[], Awaitable[bool]]) -> None:
    """Wait for a condition another process brings about (nothing to wait on here)."""
    async with asyncio.timeout(60):
        while not await condition():  # noqa: ASYNC110
            await asyncio.sleep(0.05)


@pytest.fixture
async def stdio_tools(tmp_path: Path) -> AsyncIterator[McpTools]:
    tools = McpTools([_stdio(tmp_path)], FAST)
    yield tools
    await tools.aclose()


async def test_stdio_tools_are_listed_named_and_called(stdio_tools: McpTools) -> None:
    tools = {tool.name: tool for tool in await stdio_tools.tools()}
    assert set(tools) == {f"fake__{name}" for name in FAKE_TOOLS}
    assert tools["fake__delete_item"].needs_approval
    assert not tools["fake__lookup"].needs_approval
    assert tools["fake__lookup"].parameters["required"] == ["key"]
    assert (await tools["fake__lookup"].run({"key": "token"})).text == "token=t0k"
    chart = await tools["fake__chart"].run({})
    assert chart.text == "a tiny chart" and chart.images[0].mime == "image/png"
    report = await tools["fake__report"].run({})
    assert report.text == "3 open, 5 closed" and report.structured == {"open": 3, "closed": 5}
    lookup = await tools["fake__lookup"].run({"key": "a"})
    assert lookup.structured is None  # the SDK's {"result": text} adds nothing
    failed = await tools["fake__fail"].run({})
    assert failed.is_error and "the database is on fire" in failed.text


async def test_the_tool_list_is_read_again_when_the_server_says_it_changed(
    tmp_path: Path,
) -> None:
    quiet = McpTimings(connect=30, ping_interval=3600, refresh_interval=3600, first_use_wait=30)
    source = McpTools([_stdio(tmp_path)], quiet)
    try:
        tools = {tool.name: tool for tool in await source.tools()}
        assert "fake__extra" not in tools
        assert (await tools["fake__grow"].run({})).text == "grown"

        async def listed() -> bool:
            return "fake__extra" in {tool.name for tool in await source.tools()}

        await _until(listed)
        extra = {tool.name: tool for tool in await source.tools()}["fake__extra"]
        assert (await extra.run({})).text == "extra!"
    finally:
        await source.aclose()


async def test_results_errors_and_timeouts_reach_the_model(
    stdio_tools: McpTools, fake_llm: FakeLLM, redis_client: aioredis.Redis
) -> None:
    calls = [
        FakeToolCall("fake__lookup", '{"key": "k"}', "c1"),
        FakeToolCall("fake__fail", "{}", "c2"),
        FakeToolCall("fake__slow", "{}", "c3"),
    ]
    toolbox = ToolBox([], [stdio_tools])
    async with tool_engine(fake_llm, redis_client, toolbox, tool_timeout=2) as engine:
        sink, results = await ask_with_tools(engine, fake_llm, calls, "Done.")
    assert sink.final is not None and sink.final.text == "Done."
    assert "Tools used: fake__lookup, fake__fail, fake__slow" in sink.final.notes
    offered = {spec["function"]["name"] for spec in fake_llm.requests[0].body["tools"]}
    assert offered == {f"fake__{name}" for name in FAKE_TOOLS}
    assert results["c1"].startswith("value of k from pid ")
    assert results["c2"].startswith("Error: ") and "the database is on fire" in results["c2"]
    assert results["c3"] == "Error: fake__slow took longer than 2 s."
    # The timed-out call didn't take the server down with it.
    tools = {tool.name: tool for tool in await stdio_tools.tools()}
    assert (await tools["fake__lookup"].run({"key": "again"})).text.startswith("value of again")


async def test_a_stdio_server_killed_mid_conversation_is_restarted(
    stdio_tools: McpTools, fake_llm: FakeLLM, redis_client: aioredis.Redis, tmp_path: Path
) -> None:
    lookup = [FakeToolCall("fake__lookup", '{"key": "k"}', "c1")]
    async with tool_engine(fake_llm, redis_client, ToolBox([], [stdio_tools])) as engine:
        _, results = await ask_with_tools(engine, fake_llm, lookup, "First.")
        first_pid = int((tmp_path / "fake.pid").read_text())
        assert results["c1"].endswith(f"pid {first_pid}")

        os.kill(first_pid, signal.SIGKILL)
        sink, _ = await ask_with_tools(engine, fake_llm, lookup, "Second.")
        # Whatever the tool could say while its server was down, the user gets an answer.
        assert sink.final is not None and sink.final.text == "Second."

        server = stdio_tools.servers[0]

        async def restarted() -> bool:
            pid = (tmp_path / "fake.pid").read_text()
            return pid != str(first_pid) and bool(server.tools)

        await _until(restarted)
        _, results = await ask_with_tools(engine, fake_llm, lookup, "Third.")
    second_pid = int((tmp_path / "fake.pid").read_text())
    assert second_pid != first_pid
    assert results["c1"].endswith(f"pid {second_pid}")


# -- the fake server over streamable HTTP --------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class HttpServer:
    def __init__(self, tmp_path: Path) -> None:
        self.port = _free_port()
        self.ready = tmp_path / "http.pid"
        self.process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    async def start(self) -> None:
        self.ready.unlink(missing_ok=True)
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            *("-m", "tests.fakes.mcp_server", "--http", "--port", str(self.port)),
            *("--ready-file", str(self.ready)),
        )
        await _until(self._listening)

    async def _listening(self) -> bool:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", self.port)
        except OSError:
            return False
        writer.close()
        await writer.wait_closed()
        return True

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


@pytest.fixture
async def http_server(tmp_path: Path) -> AsyncIterator[HttpServer]:
    server = HttpServer(tmp_path)
    await server.start()
    yield server
    await server.kill()


async def test_http_server_tools_and_reconnect_after_it_comes_back(
    http_server: HttpServer,
) -> None:
    [config] = parse_mcp_config(
        f'{{"mcpServers": {{"web": {{"url": "{http_server.url}", '
        '"headers": {"X-Team": "team-${TEAM}"}}}}',
        {"TEAM": "core"},
    )
    source = McpTools([config], FAST)
    try:
        tools = {tool.name: tool for tool in await source.tools()}
        assert set(tools) == {f"web__{name}" for name in FAKE_TOOLS}
        header = await tools["web__lookup"].run({"key": "header:x-team"})
        assert header.text == "header:x-team=team-core"
        first = await tools["web__lookup"].run({"key": "k"})
        assert first.text.startswith("value of k from pid ")

        await http_server.kill()

        async def down() -> bool:
            return not await source.tools()

        await _until(down)
        gone = await tools["web__lookup"].run({"key": "k"})
        assert gone.is_error and "unavailable" in gone.text

        await http_server.start()

        async def back() -> bool:
            return bool(await source.tools())

        await _until(back)
        again = {tool.name: tool for tool in await source.tools()}
        assert (await again["web__lookup"].run({"key": "k"})).text.startswith("value of k")
    finally:
        await source.aclose()


async def test_a_server_that_is_down_leaves_the_others_working(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "bot.tools.mcp_client")
    source = McpTools(
        [HttpServerConfig("down", closed_base_url() + "/mcp"), _stdio(tmp_path, "up")], FAST
    )
    try:
        names = {tool.name for tool in await source.tools()}
        assert names == {f"up__{name}" for name in FAKE_TOOLS}
        assert any(
            "MCP server down is unavailable" in record.getMessage() for record in caplog.records
        )
    finally:
        await source.aclose()


# -- from the settings ----------------------------------------------------------------


async def test_the_toolbox_reads_the_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "mcp.json"
    server = {
        "command": sys.executable,
        "args": ["-m", "tests.fakes.mcp_server"],
        "env": {"PYTHONPATH": "${PARLEY_TEST_CWD}"},
    }
    config.write_text(json.dumps({"mcpServers": {"fake": server}}, indent=2))
    monkeypatch.setenv("PARLEY_TEST_CWD", os.getcwd())
    settings = Settings(_env_file=None, bot_mcp_config=str(config))
    box = ToolBox.from_settings(settings)
    try:
        names = {spec["function"]["name"] for spec in await box.specs()}
        assert {"current_time", "calculate", "fetch_url", "fake__lookup"} <= names
    finally:
        await box.aclose()

    server["env"] = {"A": "${NOT_SET_HERE}"}
    config.write_text(json.dumps({"mcpServers": {"fake": server}}, indent=2))
    with pytest.raises(ToolConfigError, match=r"mcp.json, line 3: server 'fake': env.A uses"):
        ToolBox.from_settings(settings)
