"""Built-in tools: small, local and safe for anyone in the channel (no network, no files).

They are registered like any other Python tool, through the `parley.tools` entry points
in pyproject.toml. CPU work runs in a worker thread so a hard expression never holds up
the event loop.
"""

from __future__ import annotations

import ast
import asyncio
import operator
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.tools.base import ToolResult

MAX_EXPRESSION_CHARS = 500
MAX_EXPONENT = 1000

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


async def current_time(timezone: str = "UTC") -> ToolResult:
    """Get the current date and time in a given time zone.

    Args:
        timezone: IANA time zone, e.g. Asia/Tokyo
    """
    try:
        zone = ZoneInfo(timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ToolResult.error(
            f"Unknown time zone {timezone!r}; use an IANA name such as Europe/Paris."
        )
    return ToolResult(datetime.now(UTC).astimezone(zone).isoformat(timespec="seconds"))


async def calculate(expression: str) -> ToolResult:
    """Evaluate an arithmetic expression exactly (+ - * / // % ** and parentheses).

    Args:
        expression: e.g. (17*23)/4
    """
    return await asyncio.to_thread(_calculate, expression[:MAX_EXPRESSION_CHARS])


def _calculate(expression: str) -> ToolResult:
    try:
        value = _evaluate(ast.parse(expression, mode="eval"))
    except (SyntaxError, ValueError, ZeroDivisionError, OverflowError) as exc:
        return ToolResult.error(f"Could not evaluate {expression!r}: {exc}")
    return ToolResult(str(int(value)) if value.is_integer() else repr(value))


def _evaluate(node: ast.AST) -> float:
    if isinstance(node, ast.Expression):
        return _evaluate(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _evaluate(node.left), _evaluate(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > MAX_EXPONENT:
            raise ValueError("exponent too large")
        return float(_BINARY[type(node.op)](left, right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return float(_UNARY[type(node.op)](_evaluate(node.operand)))
    raise ValueError("only numbers and + - * / // % ** are allowed")
