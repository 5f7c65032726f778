"""One answer as a chain of platform messages, rendered in order and never half-way.

The engine pushes the whole answer so far, at most once per `min_update_interval` (the
only throttle); `render` splits it with `split_message` (code blocks are closed and
reopened across a split), edits only the messages whose text changed, posts the
continuation messages, and on the final render leaves exactly the answer's text,
deleting messages a longer draft had needed.

Every render runs in a task of the chain's own, shielded from its caller, one at a
time in the order asked: the engine cancels its update pusher when the answer ends,
and a platform call cut off half-way could leave a message the chain doesn't know of.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from bot.text.chunking import split_message

M = TypeVar("M")


class Outlet(Protocol[M]):
    """Where one answer's messages go; `M` is the platform's handle on a message.

    Each method owns its platform's errors: it logs them and reports a failure as
    `None` or `False`, because a failed edit must not lose the answer.
    """

    limit: int  # characters per message

    async def post(self, text: str, *, final: bool) -> M | None:
        """A new message holding `text`; `final` False: more text may follow (a stream)."""

    async def edit(self, message: M, before: str, text: str, *, final: bool) -> bool:
        """Make `message`, which shows `before`, show `text`; whether it does."""

    async def remove(self, message: M) -> None: ...


@dataclass(slots=True)
class _Shown(Generic[M]):
    message: M
    text: str
    final: bool  # no more text will be added to it


class MessageChain(Generic[M]):
    def __init__(self, outlet: Outlet[M], *, first: M | None = None) -> None:
        """`first`: a message that exists already and takes the answer's start."""
        self._outlet = outlet
        self._shown: list[_Shown[M]] = [] if first is None else [_Shown(first, "", False)]
        self._turn = asyncio.Lock()
        self._running: set[asyncio.Task[None]] = set()

    @property
    def messages(self) -> list[M]:
        return [shown.message for shown in self._shown]

    def adopt(self, message: M) -> None:
        """A message the outlet posted outside the renders (Slack's stream opened by a
        tool's task card) takes the answer's start; only while nothing is shown yet, and
        only from a step run in turn (`run`)."""
        if not self._shown:
            self._shown.append(_Shown(message, "", False))

    async def render(self, text: str, *, final: bool) -> None:
        """Show `text` across the chain; the final render leaves exactly `text`."""
        await self.run(self._render(text, final=final))

    async def run(self, step: Coroutine[Any, Any, None]) -> None:
        """Run `step` in turn with the renders, shielded from the caller's cancellation."""
        await asyncio.shield(self.queue(step))

    def queue(self, step: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run `step` after the steps queued before it (the lock is first come, first served)."""

        async def in_turn() -> None:
            async with self._turn:
                await step

        task = asyncio.create_task(in_turn())
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        return task

    async def _render(self, text: str, *, final: bool) -> None:
        pieces = split_message(text, self._outlet.limit) if text.strip() else []
        for index, piece in enumerate(pieces):
            done = final or index < len(pieces) - 1
            if index >= len(self._shown):
                if not await self._post(index, piece, done):
                    return  # later pieces must not appear above a missing one
                continue
            shown = self._shown[index]
            if shown.text == piece and (shown.final or not done):
                continue
            if await self._outlet.edit(shown.message, shown.text, piece, final=done):
                shown.text, shown.final = piece, done
                continue
            if final and index == len(self._shown) - 1:
                # The last message would keep a partial text: the final one goes in a new one.
                if not await self._post(index, piece, done):
                    return
        if final:
            for extra in self._shown[len(pieces) :]:
                await self._outlet.remove(extra.message)
            del self._shown[len(pieces) :]

    async def _post(self, index: int, piece: str, final: bool) -> bool:
        message = await self._outlet.post(piece, final=final)
        if message is None:
            return False
        shown = _Shown(message, piece, final)
        if index < len(self._shown):
            self._shown[index] = shown
        else:
            self._shown.append(shown)
        return True
