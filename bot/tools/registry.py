"""The tools offered to the model: Python tools plus whatever tool servers offer now."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from bot.llm.types import ToolCall
from bot.settings import Settings
from bot.tools.base import Tool, ToolResult
from bot.tools.entry_points import ToolContext, load_entry_point_tools
from bot.tools.mcp_client import McpTools
from bot.tools.mcp_config import load_mcp_config

log = logging.getLogger(__name__)

ToolPredicate = Callable[[str], bool]  # e.g. the policy's ToolFilter.allows


class ToolSource(Protocol):
    """Tools that come and go at run time (an MCP client)."""

    def start(self) -> None:
        """Begin connecting in the background (at process start); never waits."""

    async def tools(self) -> Sequence[Tool]:
        """The tools available right now; a source that is down offers none."""

    async def aclose(self) -> None: ...


class ToolBox:
    """The tools offered to the model, and finding the one a call names.

    `ToolBox()` holds the tools registered by entry point (the built-ins among them).
    """

    def __init__(
        self, tools: Iterable[Tool] | None = None, sources: Sequence[ToolSource] = ()
    ) -> None:
        chosen = load_entry_point_tools(ToolContext()) if tools is None else tools
        self._tools = {tool.name: tool for tool in chosen}
        self._sources = tuple(sources)

    @classmethod
    def from_settings(cls, settings: Settings) -> ToolBox:
        """Entry-point tools and the MCP servers of `BOT_MCP_CONFIG` (checked now: a bad
        file stops the start with `ToolConfigError` naming the line)."""
        context = ToolContext(fetch_allow_private=settings.bot_fetch_allow_private)
        sources: list[ToolSource] = []
        if settings.bot_mcp_config:
            # `${VAR}` in the file is the one place the environment is read besides
            # settings: it's the MCP configuration format's own contract.
            servers = load_mcp_config(settings.bot_mcp_config, os.environ)
            sources.append(McpTools(servers))
        return cls(load_entry_point_tools(context), sources)

    async def available(self, allowed: ToolPredicate | None = None) -> dict[str, Tool]:
        """The tools available now, by name; only those `allowed` says yes to, if given
        (the operator's per-channel list: names or `<server>__*`)."""
        tools = dict(self._tools)
        for source in self._sources:
            for tool in await source.tools():
                if tool.name in tools:
                    log.warning("tool %s is offered twice; keeping the first", tool.name)
                    continue
                tools[tool.name] = tool
        if allowed is None:
            return tools
        return {name: tool for name, tool in tools.items() if allowed(name)}

    async def specs(self, allowed: ToolPredicate | None = None) -> list[dict[str, Any]]:
        return [tool.spec() for tool in (await self.available(allowed)).values()]

    async def find(
        self, call: ToolCall, allowed: ToolPredicate | None = None
    ) -> tuple[Tool, dict[str, Any]] | ToolResult:
        """The tool a call names and its arguments, or the error to give the model."""
        tool = (await self.available(allowed)).get(call.name)
        if tool is None:
            return ToolResult.error(f"There is no tool named {call.name!r}.")
        try:
            args = json.loads(call.arguments or "{}")
        except json.JSONDecodeError:
            return ToolResult.error(f"The arguments for {call.name} were not valid JSON.")
        if not isinstance(args, dict):
            return ToolResult.error(f"The arguments for {call.name} must be a JSON object.")
        return tool, args

    async def run(self, call: ToolCall) -> ToolResult:
        """Run a call directly: no approval, no time limit (answers use `ToolCalls`)."""
        found = await self.find(call)
        if isinstance(found, ToolResult):
            return found
        tool, args = found
        return await tool.run(args)

    def start(self) -> None:
        """Start the tool sources (MCP servers) in the background, so no answer waits."""
        for source in self._sources:
            source.start()

    async def aclose(self) -> None:
        for source in self._sources:
            await source.aclose()
