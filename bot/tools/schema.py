"""A Python async function becomes a tool: JSON schema from its signature and docstring.

Supported parameter types are the ones JSON can carry: `str`, `int`, `float`, `bool`,
`list[T]`, `dict[str, T]`, `Literal[...]` of strings or numbers, and `T | None`.
Parameters without a default are required. The docstring's first paragraph describes
the tool; its Google-style `Args:` section describes the parameters. An unsupported
annotation fails when the tool is registered, not when the model calls it.
"""

from __future__ import annotations

import inspect
import re
import types
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from pydantic import TypeAdapter, ValidationError

from bot.tools.base import Tool, ToolResult

ToolFunction = Callable[..., Awaitable[ToolResult | str]]

_ARG_LINE = re.compile(r"^(\*{0,2}\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")
_SECTION = re.compile(r"^(Args|Arguments|Parameters|Returns|Raises|Yields|Examples?|Notes?):\s*$")
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class ToolDefinitionError(TypeError):
    """A function can't be offered as a tool (bad name, untyped or unsupported parameter)."""


def json_schema(annotation: Any) -> dict[str, Any]:
    """The JSON schema of one parameter type."""
    if annotation is str:
        return {"type": "string"}
    if annotation is bool:
        return {"type": "boolean"}
    if annotation is int:
        return {"type": "integer"}
    if annotation is float:
        return {"type": "number"}
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Literal:
        if not all(isinstance(value, str | int | float) for value in args):
            raise ToolDefinitionError(f"Literal values must be strings or numbers: {annotation}")
        return {"enum": list(args)}
    if origin is list and len(args) == 1:
        return {"type": "array", "items": json_schema(args[0])}
    if origin is dict and len(args) == 2 and args[0] is str:
        return {"type": "object", "additionalProperties": json_schema(args[1])}
    if origin in (Union, types.UnionType):
        options = [arg for arg in args if arg is not type(None)]
        if len(options) == 1 and len(args) == 2:
            return {"anyOf": [json_schema(options[0]), {"type": "null"}]}
    raise ToolDefinitionError(f"unsupported parameter type for a tool: {annotation!r}")


def parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """The description (first paragraph) and the `Args:` descriptions by parameter name."""
    text = inspect.cleandoc(doc or "")
    paragraphs = text.split("\n\n", 1)
    description = " ".join(paragraphs[0].split()) if paragraphs[0] else ""
    if _SECTION.match(paragraphs[0].splitlines()[0] if paragraphs[0] else ""):
        description = ""
    args: dict[str, str] = {}
    in_args = False
    current: str | None = None
    args_indent = 0
    for line in text.splitlines():
        stripped = line.strip()
        section = _SECTION.match(stripped) if not line.startswith((" ", "\t")) else None
        if section:
            in_args = section.group(1) in ("Args", "Arguments", "Parameters")
            current = None
            continue
        if not in_args or not stripped:
            continue
        indent = len(line) - len(line.lstrip())
        match = _ARG_LINE.match(stripped)
        if match and (current is None or indent <= args_indent):
            current, args_indent = match.group(1).lstrip("*"), indent
            args[current] = match.group(2).strip()
        elif current is not None:
            args[current] = f"{args[current]} {stripped}".strip()
    return description, args


def tool_from_function(function: ToolFunction, name: str | None = None) -> Tool:
    """Offer an async function as a tool named `name` (its own name by default)."""
    tool_name = name or function.__name__
    if not _NAME.match(tool_name):
        raise ToolDefinitionError(f"tool names are 1-64 letters, digits, _ or -: {tool_name!r}")
    if not inspect.iscoroutinefunction(function):
        raise ToolDefinitionError(f"tool {tool_name} must be an async function")
    try:
        hints = get_type_hints(function)
    except NameError as exc:
        raise ToolDefinitionError(f"tool {tool_name}: {exc}") from exc
    description, arg_docs = parse_docstring(function.__doc__)
    properties: dict[str, Any] = {}
    required: list[str] = []
    adapters: dict[str, TypeAdapter[Any]] = {}
    for param in inspect.signature(function).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD, param.POSITIONAL_ONLY):
            raise ToolDefinitionError(f"tool {tool_name}: {param.name} must be a named parameter")
        if param.name not in hints:
            raise ToolDefinitionError(f"tool {tool_name}: parameter {param.name} has no type")
        schema = json_schema(hints[param.name])
        if param.name in arg_docs:
            schema["description"] = arg_docs[param.name]
        properties[param.name] = schema
        adapters[param.name] = TypeAdapter(hints[param.name])
        if param.default is param.empty:
            required.append(param.name)
    parameters = {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }

    async def run(args: Mapping[str, Any]) -> ToolResult:
        unknown = sorted(set(args) - set(adapters))
        if unknown:
            return ToolResult.error(f"{tool_name} takes no parameter {', '.join(unknown)}.")
        missing = [arg for arg in required if arg not in args]
        if missing:
            return ToolResult.error(f"{tool_name} needs {', '.join(missing)}.")
        values: dict[str, Any] = {}
        for arg, value in args.items():
            try:
                values[arg] = adapters[arg].validate_python(value)
            except ValidationError as exc:
                problems = "; ".join(
                    ".".join(map(str, (arg, *error["loc"]))) + f": {error['msg']}"
                    for error in exc.errors()
                )
                return ToolResult.error(f"Invalid arguments for {tool_name}: {problems}")
        result = await function(**values)
        return result if isinstance(result, ToolResult) else ToolResult(str(result))

    return Tool(tool_name, description or tool_name, parameters, run)
