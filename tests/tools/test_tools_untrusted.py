"""What models, servers and files send is untrusted: these parsers never fail another way."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.errors import FetchRefused, ToolConfigError
from bot.llm.types import ToolCall
from bot.tools.fetch import _extract, _Page
from bot.tools.loop import SUMMARY_CHARS, _args_summary
from bot.tools.mcp_config import parse_mcp_config

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=400), json_values.map(json.dumps)))
def test_any_config_text_loads_or_names_its_line(text: str) -> None:
    try:
        servers = parse_mcp_config(text, {"A": "1"}, "mcp.json")
    except ToolConfigError as exc:
        assert str(exc).startswith("mcp.json, line ")
    else:
        assert all(server.name for server in servers)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["command", "args", "env", "url", "headers", "type", "x"]), json_values
    )
)
def test_any_server_entry_loads_or_names_its_line(entry: dict[str, Any]) -> None:
    text = json.dumps({"mcpServers": {"srv": entry}}, indent=1)
    try:
        parse_mcp_config(text, {}, "mcp.json")
    except ToolConfigError as exc:
        assert str(exc).startswith("mcp.json, line 3: server 'srv': ")


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=300), json_values.map(json.dumps)))
def test_a_progress_summary_is_one_short_line_whatever_the_arguments(arguments: str) -> None:
    summary = _args_summary(ToolCall("c", "t", arguments))
    assert len(summary) <= SUMMARY_CHARS and "\n" not in summary


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=3000) | st.text(max_size=3000).map(str.encode))
def test_any_page_body_gives_text_or_a_refusal(body: bytes) -> None:
    for content_type in ("text/html", "text/plain"):
        page = _Page("https://example.com/", content_type, body, "utf-8", False)
        try:
            assert isinstance(_extract(page), str)
        except FetchRefused as exc:
            assert "no readable main text" in str(exc)
