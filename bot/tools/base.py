"""What a tool is, what it returns, and what a tool call looks like while it runs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

ToolState = Literal["pending", "awaiting_approval", "running", "done", "error"]


@dataclass(frozen=True, slots=True)
class ToolImage:
    """An image a tool returned; the model sees it as an image part."""

    mime: str
    data: bytes


@dataclass(frozen=True, slots=True)
class ToolResult:
    """What a tool hands back to the model: text, images and structured content.

    `is_error` marks a failure the model should read (a refused URL, a server error);
    such results still go back to the model, never to the user as a crash.
    """

    text: str
    images: tuple[ToolImage, ...] = ()
    structured: Mapping[str, Any] | None = None
    is_error: bool = False

    @classmethod
    def error(cls, text: str) -> ToolResult:
        return cls(text, is_error=True)


ToolRun = Callable[[Mapping[str, Any]], Awaitable[ToolResult]]


@dataclass(frozen=True, slots=True)
class Tool:
    """One function the model may call, under the name the model sees.

    `needs_approval` marks a tool that changes something (MCP `destructiveHint`): it
    runs only after the asker approves.
    """

    name: str
    description: str
    parameters: dict[str, Any]
    run: ToolRun = field(compare=False)
    needs_approval: bool = False

    def spec(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }


@dataclass(frozen=True, slots=True)
class ToolProgress:
    """One step of a tool call, for people watching: asked for (pending), waiting for
    approval, running, finished (done) or failed (error).

    `summary` is one short line: the arguments until it ends, the outcome after.
    """

    call_id: str
    name: str
    state: ToolState
    summary: str

    def status_line(self) -> str:
        if self.state == "pending":
            return f"About to use {self.name}({self.summary})…"
        if self.state == "awaiting_approval":
            return f"Waiting for approval to use {self.name}({self.summary})…"
        if self.state == "running":
            return f"Using {self.name}({self.summary})…"
        if self.state == "done":
            return f"Used {self.name}: {self.summary}"
        return f"{self.name} failed: {self.summary}"
