"""Built-in tools the model may call (function calling, from the GPT-5.1 seed).

Each tool is small, local and safe to run for anyone in the channel: no network, no
files, no secrets. A tool's failure is returned to the model as text, never raised.
"""

from __future__ import annotations

import ast
import json
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.llm_types import ToolCall


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]
    run: Callable[[Mapping[str, Any]], str]

    def spec(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }


def _current_time(args: Mapping[str, Any]) -> str:
    zone_name = str(args.get("timezone") or "UTC")
    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError):
        return f"Unknown time zone {zone_name!r}; use an IANA name such as Europe/Paris."
    return datetime.now(UTC).astimezone(zone).isoformat(timespec="seconds")


_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}


def _evaluate(node: ast.AST) -> float:
    if isinstance(node, ast.Expression):
        return _evaluate(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _evaluate(node.left), _evaluate(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > 1000:
            raise ValueError("exponent too large")
        return float(_BINARY[type(node.op)](left, right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return float(_UNARY[type(node.op)](_evaluate(node.operand)))
    raise ValueError("only numbers and + - * / // % ** are allowed")


def _calculate(args: Mapping[str, Any]) -> str:
    expression = str(args.get("expression", ""))[:500]
    try:
        value = _evaluate(ast.parse(expression, mode="eval"))
    except (SyntaxError, ValueError, ZeroDivisionError, OverflowError) as exc:
        return f"Could not evaluate {expression!r}: {exc}"
    return str(int(value)) if value.is_integer() else repr(value)


BUILTIN_TOOLS: tuple[Tool, ...] = (
    Tool(
        "current_time",
        "Get the current date and time in a given time zone.",
        {
            "type": "object",
            "properties": {
                "timezone": {"type": "string", "description": "IANA time zone, e.g. Asia/Tokyo"}
            },
            "required": [],
        },
        _current_time,
    ),
    Tool(
        "calculate",
        "Evaluate an arithmetic expression exactly (+ - * / // % ** and parentheses).",
        {
            "type": "object",
            "properties": {"expression": {"type": "string", "description": "e.g. (17*23)/4"}},
            "required": ["expression"],
        },
        _calculate,
    ),
)


class ToolBox:
    """The tools offered to the model, and running the calls it makes."""

    def __init__(self, tools: tuple[Tool, ...] = BUILTIN_TOOLS) -> None:
        self._tools = {tool.name: tool for tool in tools}

    def specs(self) -> list[dict[str, Any]]:
        return [tool.spec() for tool in self._tools.values()]

    def run(self, call: ToolCall) -> str:
        tool = self._tools.get(call.name)
        if tool is None:
            return f"There is no tool named {call.name!r}."
        try:
            args = json.loads(call.arguments or "{}")
        except json.JSONDecodeError:
            return f"The arguments for {call.name} were not valid JSON."
        if not isinstance(args, dict):
            return f"The arguments for {call.name} must be a JSON object."
        return tool.run(args)
