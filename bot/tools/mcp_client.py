"""MCP servers' tools for the model, on the official `mcp` SDK (1.x: it runs on httpx 0.28).

Each configured server has one long-lived task that owns its connection (the SDK's
transports are anyio task groups, which must be entered and left by the same task): it
connects, reads `tools/list`, then pings the server every few seconds and reads the list
again when the server says it changed (`notifications/tools/list_changed`) or every few
minutes. When anything fails (a stdio server that died, an HTTP server that went away)
the server's tools are withdrawn with a logged warning and the task reconnects with
backoff, starting a new stdio process. Other servers are not affected.

Servers are started when the process starts (`start`, from `parley serve` and `parley
chat`), in the background: no answer waits for them and a server that is down only
logs. Without `start`, they start on first use, which waits a little for their lists.
Tools are named `<server>__<tool>`; a tool marked `destructiveHint` needs approval.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp import ClientSession, McpError, StdioServerParameters, types
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.message import SessionMessage
from mcp.shared.session import RequestResponder

from bot.tools.base import Tool, ToolImage, ToolResult
from bot.tools.mcp_config import HttpServerConfig, ServerConfig, StdioServerConfig

log = logging.getLogger(__name__)

SEPARATOR = "__"
MAX_NAME = 64  # the model API's limit on function names
MAX_TOOLS_PER_SERVER = 128
MAX_LIST_PAGES = 10
MAX_IMAGE_BASE64 = 14 * 1024 * 1024  # about 10 MB decoded, the model API's limit
_BAD_NAME_CHARS = re.compile(r"[^A-Za-z0-9_-]")

Streams = tuple[
    MemoryObjectReceiveStream[SessionMessage | Exception],
    MemoryObjectSendStream[SessionMessage],
]


@dataclass(frozen=True, slots=True)
class McpTimings:
    connect: float = 20.0  # to start or reach a server and initialize the session
    ping_interval: float = 10.0  # how often a quiet server is checked
    refresh_interval: float = 300.0  # re-read tools/list even without a notification
    max_backoff: float = 30.0  # longest wait before reconnecting to a server that is down
    first_use_wait: float = 10.0  # how long the first answer waits for servers to list tools


class McpServer:
    """One MCP server: its connection task, and its tools while it is up."""

    def __init__(self, config: ServerConfig, timings: McpTimings) -> None:
        self.config = config
        self.name = config.name
        self.tools: list[Tool] = []
        self._timings = timings
        self._session: ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._settled = asyncio.Event()  # the first attempt is over, either way
        self._wake = asyncio.Event()
        self._relist = False
        self._broken = False
        self._closing = False

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._keep_connected(), name=f"mcp:{self.name}")

    async def settled(self) -> None:
        await self._settled.wait()

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        self._closing = True
        task.cancel()
        # The transport's task group may turn the cancellation into an error on the way
        # out; `_closing` makes the loop end then too, instead of reconnecting.
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def call(self, tool: str, args: Mapping[str, Any]) -> ToolResult:
        session = self._session
        if session is None:
            return ToolResult.error(f"The {self.name} tool server is unavailable right now.")
        try:
            result = await session.call_tool(tool, dict(args))
        except McpError as exc:
            if exc.error.code == types.CONNECTION_CLOSED:
                self._reconnect()
            return ToolResult.error(f"The {self.name} server refused: {exc.error.message}")
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            self._reconnect()
            return ToolResult.error(f"The {self.name} tool server went away during the call.")
        return _result(result)

    def _reconnect(self) -> None:
        self._broken = True
        self._wake.set()

    async def _keep_connected(self) -> None:
        backoff = 0.5
        while not self._closing:
            started = time.monotonic()
            try:
                await self._serve()
            except Exception as exc:
                if self._closing:
                    return
                log.warning(
                    "MCP server %s is unavailable, its tools are withdrawn: %s",
                    self.name,
                    _describe(exc),
                )
            self._session, self.tools = None, []
            self._settled.set()
            if time.monotonic() - started > self._timings.ping_interval:
                backoff = 0.5  # it had been up a while: a fresh failure
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self._timings.max_backoff)

    async def _serve(self) -> None:
        timings = self._timings
        async with AsyncExitStack() as stack:
            read, write = await stack.enter_async_context(self._transport())
            session = await stack.enter_async_context(
                ClientSession(read, write, message_handler=self._on_message)
            )
            with anyio.fail_after(timings.connect):
                await session.initialize()
                await self._list(session)
            self._session, self._broken = session, False
            self._settled.set()
            log.info("MCP server %s is up with %d tools", self.name, len(self.tools))
            listed = time.monotonic()
            while not self._broken:
                with anyio.move_on_after(timings.ping_interval):
                    await self._wake.wait()
                self._wake.clear()
                if self._broken:
                    break
                with anyio.fail_after(timings.connect):
                    if self._relist or time.monotonic() - listed > timings.refresh_interval:
                        self._relist = False
                        await self._list(session)
                        listed = time.monotonic()
                    else:
                        await session.send_ping()
            raise ConnectionError("the connection was lost")

    @asynccontextmanager
    async def _transport(self) -> AsyncIterator[Streams]:
        config = self.config
        if isinstance(config, StdioServerConfig):
            params = StdioServerParameters(
                command=config.command, args=list(config.args), env=dict(config.env) or None
            )
            async with stdio_client(params) as (read, write):
                yield read, write
            return
        assert isinstance(config, HttpServerConfig)
        async with (
            create_mcp_http_client(headers=dict(config.headers)) as http,
            streamable_http_client(config.url, http_client=http) as (read, write, _),
        ):
            yield read, write

    async def _on_message(
        self,
        message: RequestResponder[types.ServerRequest, types.ClientResult]
        | types.ServerNotification
        | Exception,
    ) -> None:
        if isinstance(message, types.ServerNotification) and isinstance(
            message.root, types.ToolListChangedNotification
        ):
            self._relist = True
            self._wake.set()

    async def _list(self, session: ClientSession) -> None:
        listed: list[types.Tool] = []
        cursor: str | None = None
        for _ in range(MAX_LIST_PAGES):
            page = await session.list_tools(cursor)
            listed.extend(page.tools)
            cursor = page.nextCursor
            if not cursor or len(listed) >= MAX_TOOLS_PER_SERVER:
                break
        tools = []
        for tool in listed[:MAX_TOOLS_PER_SERVER]:
            name = f"{self.name}{SEPARATOR}{_BAD_NAME_CHARS.sub('_', tool.name)}"
            if len(name) > MAX_NAME:
                log.warning("MCP tool %s left out: its name is over %d characters", name, MAX_NAME)
                continue
            tools.append(self._tool(name, tool))
        self.tools = tools

    def _tool(self, name: str, tool: types.Tool) -> Tool:
        original = tool.name

        async def run(args: Mapping[str, Any]) -> ToolResult:
            return await self.call(original, args)

        annotations = tool.annotations
        return Tool(
            name=name,
            description=(tool.description or tool.title or tool.name)[:1024],
            parameters=tool.inputSchema or {"type": "object", "properties": {}},
            run=run,
            needs_approval=bool(annotations and annotations.destructiveHint),
        )


class McpTools:
    """All configured MCP servers, as one source of tools for the `ToolBox`."""

    def __init__(self, configs: Sequence[ServerConfig], timings: McpTimings | None = None) -> None:
        self._timings = timings or McpTimings()
        self.servers = [McpServer(config, self._timings) for config in configs]
        self._started = False

    def start(self) -> None:
        """Connect to every server in the background; their tools appear as they list them."""
        self._started = True
        for server in self.servers:
            server.start()

    async def tools(self) -> list[Tool]:
        if not self._started:
            self.start()
            waits = [asyncio.ensure_future(server.settled()) for server in self.servers]
            if waits:
                _, pending = await asyncio.wait(waits, timeout=self._timings.first_use_wait)
                for wait in pending:
                    wait.cancel()
        return [tool for server in self.servers for tool in server.tools]

    async def aclose(self) -> None:
        for server in self.servers:
            await server.aclose()


def _result(result: types.CallToolResult) -> ToolResult:
    texts: list[str] = []
    images: list[ToolImage] = []
    for block in result.content:
        if isinstance(block, types.TextContent):
            texts.append(block.text)
        elif isinstance(block, types.ImageContent):
            image = _image(block)
            if image is None:
                texts.append(f"[an image ({block.mimeType}) that could not be passed on]")
            else:
                images.append(image)
        elif isinstance(block, types.EmbeddedResource):
            resource = block.resource
            if isinstance(resource, types.TextResourceContents):
                texts.append(resource.text)
            else:
                texts.append(f"[binary resource {resource.uri}]")
        elif isinstance(block, types.ResourceLink):
            texts.append(f"[resource {block.name}: {block.uri}]")
        else:
            texts.append(f"[{block.type} content left out]")
    text = "\n".join(texts)
    structured = result.structuredContent
    if structured is not None and _repeats(structured, text):
        structured = None
    return ToolResult(text, tuple(images), structured, result.isError)


def _image(block: types.ImageContent) -> ToolImage | None:
    if len(block.data) > MAX_IMAGE_BASE64:
        return None
    try:
        return ToolImage(block.mimeType, base64.b64decode(block.data, validate=True))
    except binascii.Error:
        return None


def _repeats(structured: dict[str, Any], text: str) -> bool:
    """Whether the text already says what the structured content does (the SDK sends
    both, and wraps a plain return value as {"result": ...})."""
    try:
        parsed: Any = json.loads(text)
    except ValueError:
        parsed = text
    return structured == parsed or structured == {"result": parsed}


def _describe(exc: BaseException) -> str:
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
