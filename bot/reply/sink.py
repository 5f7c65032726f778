"""The contract between the engine and an adapter: where an answer is written.

The engine calls, in order: `start()` once; `meet()` once it has read the conversation
(not at all when it answers without reading it); then any number of `progress()` and
`update()`; then exactly one of `finish()` or `fail()`. It never calls `update()` more
often than `min_update_interval` seconds apart, so adapters need no throttling of their
own, and the first `update()` comes `first_update_delay` seconds after the first text:
an answer complete by then gets no `update()` at all, only `finish()`. `update()`
always gets the whole answer so far; an adapter that appends (Slack's streaming
methods) sends the part after what it already sent.

A sink's methods own their platform errors: they log them and carry on, because a
failed edit must not lose the answer. `finish()` must leave the full, exact text.

Two capabilities a sink may add, found by `show_tool_progress` and `approval_asker`:
`tool_progress(event)` shows one step of a tool call (Slack: a task card; Discord: a
line in the answer); a sink without it gets the step as a `progress()` status line.
`ask_approval(request)` shows Approve and Deny buttons to the asker; where a sink has
none, a tool that needs approval is refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from bot.llm.types import Usage
from bot.reply.audience import Audience
from bot.tools.approval import AskForApproval
from bot.tools.base import ToolProgress


@dataclass(frozen=True, slots=True)
class FinalReply:
    text: str
    notes: tuple[str, ...] = ()  # warnings for the user: skipped files, fallbacks, a cut-off
    model: str = ""  # set on a model's answer: adapters add 👍/👎 buttons to it
    usage: Usage = field(default_factory=Usage)
    persona: str = ""  # the policy's persona that answered (`Persona.name`), for feedback


class ReplySink(Protocol):
    min_update_interval: float
    first_update_delay: float

    async def start(self) -> None:
        """Show that the bot is working on it ("thinking", typing, a reaction)."""

    def meet(self, audience: Audience) -> None:
        """Whom the answer is for: the people it may mention, the links it may preview.
        Until this is called (or if it never is) the answer may mention and preview none."""

    async def progress(self, status: str) -> None:
        """Replace the working status: reasoning in progress, a tool being used."""

    async def update(self, text: str) -> None:
        """Show the answer so far."""

    async def finish(self, reply: FinalReply) -> None:
        """Show the final answer and clear any working status."""

    async def fail(self, message: str) -> None:
        """Show a failure the user can act on and clear any working status."""



async def show_tool_progress(sink: ReplySink, event: ToolProgress) -> None:
    """The sink's own `tool_progress`, or else the step as a status line."""
    method = getattr(sink, "tool_progress", None)
    if method is None:
        await sink.progress(event.status_line())
    else:
        await method(event)


def approval_asker(sink: ReplySink) -> AskForApproval | None:
    """How `sink` asks for approval, or None where it can't (the tool is then refused)."""
    ask: AskForApproval | None = getattr(sink, "ask_approval", None)
    return ask
