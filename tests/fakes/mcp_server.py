"""A fake MCP server built with the official SDK's own server side (FastMCP).

Tools: `lookup` (read-only: answers with the key and this process's id; for key
"token", the FAKE_MCP_TOKEN from its environment; for "header:<name>", that header of
the HTTP request), `slow` (sleeps), `fail` (raises),
`delete_item` (`destructiveHint: true`), `chart` (an image plus text) and `report`
(text and structured content) and `grow` (adds a tool `extra`, then sends
`notifications/tools/list_changed`).

    python -m tests.fakes.mcp_server                       # stdio
    python -m tests.fakes.mcp_server --http --port 8765    # streamable HTTP at /mcp

`--ready-file PATH` writes the process id there once the server is about to serve, so
tests can wait for it (and kill it) without sleeping.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
from pathlib import Path

from mcp.server.fastmcp import Context, FastMCP, Image
from mcp.types import CallToolResult, TextContent, ToolAnnotations

# A 1x1 PNG.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


def build(port: int = 0) -> FastMCP:
    server = FastMCP("fake", host="127.0.0.1", port=port, log_level="WARNING")

    @server.tool(annotations=ToolAnnotations(readOnlyHint=True))
    async def lookup(key: str, ctx: Context) -> str:
        """Look a key up in the fake's table."""
        if key == "token":
            return f"token={os.environ.get('FAKE_MCP_TOKEN', '')}"
        if key.startswith("header:"):
            request = ctx.request_context.request  # the HTTP request, over streamable HTTP
            headers = getattr(request, "headers", {})
            return f"{key}={headers.get(key.removeprefix('header:'), '')}"
        return f"value of {key} from pid {os.getpid()}"

    @server.tool()
    async def slow(seconds: float = 3600) -> str:
        """Take a long time."""
        await asyncio.sleep(seconds)
        return "finally"

    @server.tool()
    async def fail() -> str:
        """Always fail."""
        raise ValueError("the database is on fire")

    @server.tool(annotations=ToolAnnotations(destructiveHint=True))
    async def delete_item(item: str) -> str:
        """Delete an item for good."""
        return f"deleted {item}"

    @server.tool(structured_output=False)
    async def chart() -> list[object]:
        """Draw a chart."""
        return ["a tiny chart", Image(data=PNG, format="png")]

    @server.tool()
    async def report() -> CallToolResult:
        """Count things."""
        return CallToolResult(
            content=[TextContent(type="text", text="3 open, 5 closed")],
            structuredContent={"open": 3, "closed": 5},
        )

    @server.tool()
    async def grow(ctx: Context) -> str:
        """Add a tool named `extra` and tell the client the list changed."""

        async def extra() -> str:
            return "extra!"

        server.add_tool(extra, name="extra", description="Added later.")
        await ctx.session.send_tool_list_changed()
        return "grown"

    return server


def main() -> None:
    parser = argparse.ArgumentParser(description="A fake MCP server.")
    parser.add_argument("--http", action="store_true", help="streamable HTTP instead of stdio")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--ready-file", type=Path)
    args = parser.parse_args()
    server = build(args.port)
    if args.ready_file is not None:
        args.ready_file.write_text(str(os.getpid()))
    server.run("streamable-http" if args.http else "stdio")


if __name__ == "__main__":
    main()
