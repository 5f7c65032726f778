"""The tool specs a persona lets the model see: by name, or `<server>__*` for an MCP server's."""

from __future__ import annotations

from typing import Any

from bot.policy.resolve import ToolFilter


def spec_name(spec: dict[str, Any]) -> str:
    """The name in an OpenAI tool spec (`{"type": "function", "function": {"name": ...}}`)."""
    function = spec.get("function")
    name = function.get("name") if isinstance(function, dict) else spec.get("name")
    return name if isinstance(name, str) else ""


def allowed_tools(specs: list[dict[str, Any]], allowed: ToolFilter) -> list[dict[str, Any]]:
    """`specs` the filter allows, in their order; none when the filter is `[]`."""
    if allowed.none:
        return []
    return [spec for spec in specs if allowed.allows(spec_name(spec))]
