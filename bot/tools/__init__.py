"""Tools the model may call: Python tools (built-ins and `parley.tools` entry points),
MCP servers' tools, and the loop that runs one answer's calls."""

from bot.tools.base import Tool, ToolImage, ToolProgress, ToolResult
from bot.tools.entry_points import ToolContext
from bot.tools.loop import ToolCalls
from bot.tools.registry import ToolBox, ToolSource

__all__ = [
    "Tool",
    "ToolBox",
    "ToolCalls",
    "ToolContext",
    "ToolImage",
    "ToolProgress",
    "ToolResult",
    "ToolSource",
]
