"""Python tools: the built-ins, entry points, and schemas derived from signatures."""

from __future__ import annotations

import asyncio
import json
from typing import Any, Literal

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.llm.types import ToolCall
from bot.tools import ToolBox, ToolContext, ToolResult
from bot.tools.entry_points import load_entry_point_tools
from bot.tools.schema import ToolDefinitionError, json_schema, parse_docstring, tool_from_function


async def test_calculate_is_exact_and_safe() -> None:
    box = ToolBox()
    assert (
        await box.run(ToolCall("1", "calculate", '{"expression": "(17*23)/4"}'))
    ).text == "97.75"
    assert (await box.run(ToolCall("1", "calculate", '{"expression": "2**10"}'))).text == "1024"
    refused = await box.run(ToolCall("1", "calculate", '{"expression": "__import__(\\"os\\")"}'))
    assert refused.is_error and refused.text.startswith("Could not evaluate")
    huge = await box.run(ToolCall("1", "calculate", '{"expression": "9**9**9"}'))
    assert huge.is_error and "exponent too large" in huge.text


async def test_current_time_and_bad_input_are_answered_not_raised() -> None:
    box = ToolBox()
    tokyo = await box.run(ToolCall("1", "current_time", '{"timezone": "Asia/Tokyo"}'))
    assert tokyo.text.endswith("+09:00")
    mars = await box.run(ToolCall("1", "current_time", '{"timezone": "Mars"}'))
    assert mars.is_error and "Unknown time zone" in mars.text
    assert "no tool named" in (await box.run(ToolCall("1", "rm_rf", "{}"))).text
    assert "not valid JSON" in (await box.run(ToolCall("1", "calculate", "{oops"))).text
    assert "JSON object" in (await box.run(ToolCall("1", "calculate", "[1]"))).text
    wrong = await box.run(ToolCall("1", "calculate", '{"expr": "1"}'))
    assert wrong.is_error and "no parameter expr" in wrong.text


def test_the_built_ins_are_registered_as_entry_points() -> None:
    names = {tool.name for tool in load_entry_point_tools(ToolContext())}
    assert {"current_time", "calculate", "fetch_url"} <= names


async def test_a_typed_async_function_becomes_a_tool() -> None:
    async def search(
        query: str,
        limit: int = 5,
        mode: Literal["fast", "deep"] = "fast",
        tags: list[str] | None = None,
    ) -> str:
        """Search the team wiki.

        Longer explanation that is not part of the description.

        Args:
            query: What to look for,
                over two lines.
            limit (int): Most results.
            mode: How hard to look.

        Returns:
            The matching pages.
        """
        return f"{query}|{limit}|{mode}|{tags}"

    tool = tool_from_function(search)
    assert tool.name == "search" and tool.description == "Search the team wiki."
    assert tool.parameters == {
        "type": "object",
        "properties": {
            "query": {"type": "string", "description": "What to look for, over two lines."},
            "limit": {"type": "integer", "description": "Most results."},
            "mode": {"enum": ["fast", "deep"], "description": "How hard to look."},
            "tags": {"anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "null"}]},
        },
        "required": ["query"],
        "additionalProperties": False,
    }
    assert (await tool.run({"query": "redis", "tags": ["a"]})).text == "redis|5|fast|['a']"
    bad = await tool.run({"query": "x", "mode": "slow"})
    assert bad.is_error and "mode" in bad.text
    assert (await tool.run({})).text == "search needs query."


def test_functions_that_cannot_be_tools_fail_when_registered() -> None:
    def not_async(x: int) -> str:
        return ""

    async def untyped(x) -> str:  # type: ignore[no-untyped-def]
        return ""

    async def odd_type(x: set[int]) -> str:
        return ""

    async def star(*args: int) -> str:
        return ""

    for function in (not_async, untyped, odd_type, star):
        with pytest.raises(ToolDefinitionError):
            tool_from_function(function)  # type: ignore[arg-type]
    with pytest.raises(ToolDefinitionError):
        tool_from_function(untyped, name="has space")  # type: ignore[arg-type]


# Parameter types a tool may take, with a strategy for the JSON values of each.
_SCALARS: list[tuple[Any, st.SearchStrategy[Any]]] = [
    (str, st.text(max_size=20)),
    (int, st.integers(-(2**40), 2**40)),
    (float, st.floats(allow_nan=False, allow_infinity=False)),
    (bool, st.booleans()),
    (Literal["a", "b", 3], st.sampled_from(["a", "b", 3])),
]


def _types() -> st.SearchStrategy[tuple[Any, st.SearchStrategy[Any]]]:
    def wrap(inner: st.SearchStrategy[tuple[Any, Any]]) -> st.SearchStrategy[tuple[Any, Any]]:
        return st.one_of(
            inner.map(lambda t: (list[t[0]], st.lists(t[1], max_size=3))),  # type: ignore[name-defined]
            inner.map(
                lambda t: (dict[str, t[0]], st.dictionaries(st.text(max_size=5), t[1], max_size=3))
            ),  # type: ignore[name-defined]
            inner.map(lambda t: (t[0] | None, st.none() | t[1])),
        )

    return st.recursive(st.sampled_from(_SCALARS), wrap, max_leaves=4)


@settings(max_examples=200, deadline=None)
@given(st.data(), _types())
def test_derived_schemas_accept_every_value_of_the_type(
    data: st.DataObject, kind: tuple[Any, st.SearchStrategy[Any]]
) -> None:
    annotation, values = kind
    schema = json_schema(annotation)
    jsonschema.Draft202012Validator.check_schema(schema)
    value = json.loads(json.dumps(data.draw(values)))
    jsonschema.validate(value, schema)

    async def echo(value: Any) -> ToolResult:
        """Echo."""
        return ToolResult("", structured={"value": value})

    echo.__annotations__ = {"value": annotation, "return": ToolResult}
    tool = tool_from_function(echo)
    assert tool.parameters["properties"]["value"] == schema
    result = asyncio.run(tool.run({"value": value}))
    assert not result.is_error and result.structured == {"value": value}


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_any_docstring_parses_without_error(doc: str) -> None:
    description, args = parse_docstring(doc)
    assert "\n" not in description
    assert all(isinstance(name, str) and isinstance(text, str) for name, text in args.items())


async def test_a_tool_result_may_be_a_full_tool_result() -> None:
    async def picture() -> ToolResult:
        """Draw."""
        return ToolResult("drawn", structured={"ok": True})

    result = await tool_from_function(picture).run({})
    assert result.text == "drawn" and result.structured == {"ok": True}
