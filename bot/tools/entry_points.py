"""Tools installed as Python packages, found through the `parley.tools` entry-point group.

An entry point names one of:
- an async function with a typed signature: the tool is derived from it (`bot.tools.schema`),
  named after the entry point;
- a `Tool`, offered as it is;
- a factory taking a `ToolContext` and returning a `Tool` (for tools that need settings).

Parley's own built-ins are registered the same way in pyproject.toml. A tool that fails
to load is left out with a logged warning; the others still load.
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass
from importlib.metadata import entry_points

from bot.tools.base import Tool
from bot.tools.schema import tool_from_function

log = logging.getLogger(__name__)

GROUP = "parley.tools"


@dataclass(frozen=True, slots=True)
class ToolContext:
    """What a tool factory may know about the deployment (from `bot.settings`)."""

    fetch_allow_private: bool = False


def load_entry_point_tools(context: ToolContext, group: str = GROUP) -> list[Tool]:
    tools: list[Tool] = []
    for point in entry_points(group=group):
        try:
            target = point.load()
            if isinstance(target, Tool):
                tool = target
            elif inspect.iscoroutinefunction(target):
                tool = tool_from_function(target, point.name)
            elif callable(target):
                tool = target(context)
                if not isinstance(tool, Tool):
                    raise TypeError(f"factory returned {type(tool).__name__}, not a Tool")
            else:
                raise TypeError(f"{point.value} is not a function, a Tool or a factory")
        except Exception as exc:
            log.warning("tool entry point %s (%s) left out: %s", point.name, point.value, exc)
            continue
        tools.append(tool)
    return tools
