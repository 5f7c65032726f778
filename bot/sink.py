"""The contract between the engine and an adapter: where an answer is written.

The engine calls, in order: `start()` once; `meet()` once it has read the conversation
(not at all when it answers without reading it); then any number of `progress()` and
`update()`; then exactly one of `finish()` or `fail()`. It never calls `update()` more
often than `min_update_interval` seconds apart, so adapters need no throttling of their
own. `update()` always gets the whole answer so far; an adapter that appends (Slack's
streaming methods) sends the part after what it already sent.

A sink's methods own their platform errors: they log them and carry on, because a
failed edit must not lose the answer. `finish()` must leave the full, exact text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from bot.llm_types import Usage
from bot.reply.audience import Audience


@dataclass(frozen=True, slots=True)
class FinalReply:
    text: str
    notes: tuple[str, ...] = ()  # warnings for the user: skipped files, fallbacks, a cut-off
    model: str = ""  # set on a model's answer: adapters add 👍/👎 buttons to it
    usage: Usage = field(default_factory=Usage)
    persona: str = ""  # the policy's persona that answered (`Persona.name`), for feedback


class ReplySink(Protocol):
    min_update_interval: float

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
