"""The `BOT_MCP_CONFIG` file: MCP servers in the format other MCP clients use.

    {"mcpServers": {
        "files": {"command": "npx", "args": ["-y", "@mcp/files"],
                  "env": {"TOKEN": "${FILES_TOKEN}"}},
        "issues": {"url": "https://mcp.example.com/mcp",
                   "headers": {"Authorization": "Bearer ${ISSUES_KEY}"}}
    }}

`${VAR}` in `env` and `headers` values is replaced from the environment, so secrets stay
out of the file. The file is checked when it is loaded; every error names its line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.errors import ToolConfigError

MAX_CONFIG_BYTES = 1024 * 1024
SERVER_NAME = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True, slots=True)
class StdioServerConfig:
    name: str
    command: str
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class HttpServerConfig:
    name: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)


ServerConfig = StdioServerConfig | HttpServerConfig


def load_mcp_config(path: str | Path, environ: Mapping[str, str]) -> list[ServerConfig]:
    """The servers in the file at `path`; `ToolConfigError` naming the line if it's wrong."""
    path = Path(path)
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ToolConfigError(f"{path}: can't read the MCP configuration ({exc.strerror})") from exc
    if len(raw) > MAX_CONFIG_BYTES:
        raise ToolConfigError(f"{path}: the MCP configuration is larger than 1 MB")
    return parse_mcp_config(raw.decode("utf-8", errors="replace"), environ, str(path))


def parse_mcp_config(
    text: str, environ: Mapping[str, str], source: str = "BOT_MCP_CONFIG"
) -> list[ServerConfig]:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ToolConfigError(f"{source}, line {exc.lineno}: invalid JSON: {exc.msg}") from exc
    servers = document.get("mcpServers") if isinstance(document, dict) else None
    if not isinstance(servers, dict):
        raise ToolConfigError(f'{source}, line 1: expected {{"mcpServers": {{...}}}}')
    return [_server(name, entry, text, environ, source) for name, entry in servers.items()]


def _server(
    name: str, entry: Any, text: str, environ: Mapping[str, str], source: str
) -> ServerConfig:
    line = _line_of(text, name)

    def fail(problem: str) -> ToolConfigError:
        return ToolConfigError(f"{source}, line {line}: server {name!r}: {problem}")

    if not SERVER_NAME.match(name):
        raise fail("names are 1-40 letters, digits, _ or - (they prefix its tools' names)")
    if not isinstance(entry, dict):
        raise fail("expected an object with a command or a url")
    if ("command" in entry) == ("url" in entry):
        raise fail('needs exactly one of "command" (stdio) or "url" (streamable HTTP)')
    allowed = {"command", "args", "env"} if "command" in entry else {"url", "headers"}
    unknown = sorted(set(entry) - allowed - {"type"})  # some clients write "type": "stdio"
    if unknown:
        raise fail(f"unknown field {', '.join(map(repr, unknown))}")

    def strings(key: str) -> dict[str, str]:
        value = entry.get(key, {})
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise fail(f'"{key}" must be an object of strings')
        expanded = {}
        for item, template in value.items():
            missing = [v for v in _VARIABLE.findall(template) if v not in environ]
            if missing:
                raise fail(f"{key}.{item} uses ${{{missing[0]}}}, which is not set")
            expanded[item] = _VARIABLE.sub(lambda m: environ[m.group(1)], template)
        return expanded

    if "command" in entry:
        command, args = entry["command"], entry.get("args", [])
        if not isinstance(command, str) or not command:
            raise fail('"command" must be a non-empty string')
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            raise fail('"args" must be a list of strings')
        return StdioServerConfig(name, command, tuple(args), strings("env"))
    url = entry["url"]
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise fail('"url" must be an http(s) URL')
    return HttpServerConfig(name, url, strings("headers"))


def _line_of(text: str, name: str) -> int:
    match = re.search(re.escape(json.dumps(name)) + r"\s*:", text)
    return text.count("\n", 0, match.start()) + 1 if match else 1
