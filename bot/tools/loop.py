"""One turn's tool calls: each round's calls run concurrently, each within the timeout.

A call that fails, times out, is refused or names no tool still gets a result: the error
text goes back to the model as that tool's output, so the model can recover or explain,
and the user never sees a crash. Every call is counted (`parley_tool_calls_total{tool,
outcome}`), every round too (`parley_tool_rounds_total`), and each is logged with its
duration. People watching get a `ToolProgress` per step through `on_progress`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from bot.llm.types import ToolCall
from bot.metrics import Metrics
from bot.text.neutralize import untrusted_tool_result
from bot.tools.base import Tool, ToolProgress, ToolResult, ToolState
from bot.tools.registry import ToolBox, ToolPredicate

log = logging.getLogger(__name__)

MAX_RESULT_CHARS = 20_000  # of one tool's text handed to the model
MAX_RESULT_IMAGES = 4
MAX_IMAGE_BYTES = 10 * 1024 * 1024  # the model API's own per-image limit
IMAGE_MIMES = frozenset({"image/png", "image/jpeg", "image/webp"})
SUMMARY_CHARS = 80

ProgressCallback = Callable[[ToolProgress], None]


class ApprovalGate(Protocol):
    """Asks the person who asked whether `tool` may run with these arguments."""

    async def __call__(self, call: ToolCall, tool: Tool, summary: str) -> bool: ...


class ToolCalls:
    """Runs the tool calls of one answer and remembers which tools it used."""

    def __init__(
        self,
        toolbox: ToolBox,
        metrics: Metrics,
        *,
        timeout: float,
        on_progress: ProgressCallback,
        allowed: ToolPredicate | None = None,
        approval: ApprovalGate | None = None,
        needs_approval: ToolPredicate | None = None,
    ) -> None:
        """Only tools `allowed` says yes to may run (all, if it is None). `approval` asks
        before a tool that changes something runs (MCP `destructiveHint`, or a name
        `needs_approval` says yes to); without it, such tools are refused."""
        self._allowed = allowed
        self._approval = approval
        self._needs_approval_by_name = needs_approval
        self._toolbox = toolbox
        self._metrics = metrics
        self._timeout = timeout
        self._on_progress = on_progress
        self.used: list[str] = []

    async def run_round(self, calls: Sequence[ToolCall]) -> list[dict[str, Any]]:
        """The messages that answer `calls`: one `tool` message per call, in order, then
        one user message with the images the tools returned, if any."""
        self._metrics.tool_rounds.inc()
        results = await asyncio.gather(*(self._run(call) for call in calls))
        messages: list[dict[str, Any]] = [
            {
                "role": "tool",
                "tool_call_id": call.id,
                "content": untrusted_tool_result(call.name, _content(result)),
            }
            for call, result in zip(calls, results, strict=True)
        ]
        images = _image_parts(calls, results)
        if images:
            messages.append({"role": "user", "content": images})
        return messages

    def note(self) -> str | None:
        """The line the final answer carries about the tools it used."""
        if not self.used:
            return None
        return "Tools used: " + ", ".join(dict.fromkeys(self.used))

    async def _run(self, call: ToolCall) -> ToolResult:
        summary = _args_summary(call)
        self._on_progress(ToolProgress(call.id, call.name, "pending", summary))
        started = time.monotonic()
        outcome = "ok"
        try:
            found = await self._toolbox.find(call, self._allowed)
            if isinstance(found, ToolResult):
                self._on_progress(ToolProgress(call.id, call.name, "running", summary))
                result, outcome = found, "unknown"
            elif self._needs_approval(found[0]) and not await self._approved(call, found[0]):
                outcome = "denied"
                result = ToolResult.error(
                    f"{call.name} changes something, so it runs only when the person who "
                    "asked approves it, and they did not (or couldn't be asked here)."
                )
            else:
                tool, args = found
                self._on_progress(ToolProgress(call.id, call.name, "running", summary))
                self.used.append(tool.name)
                async with asyncio.timeout(self._timeout):
                    result = await tool.run(args)
                outcome = "error" if result.is_error else "ok"
        except TimeoutError:
            outcome = "timeout"
            result = ToolResult.error(f"{call.name} took longer than {self._timeout:g} s.")
        except Exception as exc:
            outcome = "error"
            log.warning("tool %s raised", call.name, exc_info=True)
            result = ToolResult.error(f"{call.name} failed: {type(exc).__name__}: {exc}")
        duration = time.monotonic() - started
        label = call.name if outcome != "unknown" else "unknown"
        self._metrics.tool_calls.labels(label, outcome).inc()
        log.info("tool %s %s in %.3fs", call.name, outcome, duration)
        state: ToolState = "error" if result.is_error else "done"
        self._on_progress(ToolProgress(call.id, call.name, state, _first_line(result.text)))
        return result

    def _needs_approval(self, tool: Tool) -> bool:
        by_name = self._needs_approval_by_name
        return tool.needs_approval or (by_name is not None and by_name(tool.name))

    async def _approved(self, call: ToolCall, tool: Tool) -> bool:
        summary = _args_summary(call)
        self._on_progress(ToolProgress(call.id, call.name, "awaiting_approval", summary))
        if self._approval is None:
            return False
        return await self._approval(call, tool, summary)


def _content(result: ToolResult) -> str:
    text = result.text
    if result.structured is not None:
        structured = json.dumps(result.structured, ensure_ascii=False, default=str)
        if structured not in text:
            text = f"{text}\n\nStructured content: {structured}" if text else structured
    if len(text) > MAX_RESULT_CHARS:
        text = text[:MAX_RESULT_CHARS] + f"\n[cut at {MAX_RESULT_CHARS:,} characters]"
    if result.is_error:
        return f"Error: {text}"
    return text or "(no output)"


def _image_parts(calls: Sequence[ToolCall], results: Sequence[ToolResult]) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    for call, result in zip(calls, results, strict=True):
        images = [
            image
            for image in result.images
            if image.mime in IMAGE_MIMES and 0 < len(image.data) <= MAX_IMAGE_BYTES
        ][:MAX_RESULT_IMAGES]
        if not images:
            continue
        parts.append({"type": "text", "text": f"Images returned by {call.name} ({call.id}):"})
        for image in images:
            url = f"data:{image.mime};base64,{base64.b64encode(image.data).decode()}"
            parts.append({"type": "image_url", "image_url": {"url": url}})
    return parts


def _args_summary(call: ToolCall) -> str:
    try:
        args = json.loads(call.arguments or "{}")
    except json.JSONDecodeError:
        return _shorten(call.arguments)
    if isinstance(args, dict):
        return _shorten(
            ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in args.items())
        )
    return _shorten(call.arguments)


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return _shorten(lines[0]) if lines else "no output"


def _shorten(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= SUMMARY_CHARS else text[: SUMMARY_CHARS - 1] + "…"
