"""Whether the adapter takes new events, and which of its handlers are still running."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)


class Intake:
    def __init__(self) -> None:
        self.open = True
        self._running: set[asyncio.Task[object]] = set()

    @contextmanager
    def track(self) -> Iterator[None]:
        """Count the current handler task as in flight until the block ends."""
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("Intake.track() needs a running task")
        self._running.add(task)
        try:
            yield
        finally:
            self._running.discard(task)

    async def drain(self, grace: float) -> None:
        """Wait for handlers in flight, then cancel any still running after `grace` seconds."""
        if not self._running:
            return
        _, pending = await asyncio.wait(set(self._running), timeout=grace)
        for task in pending:
            log.warning("cancelling a Discord handler still running at shutdown")
            task.cancel()
        if pending:
            await asyncio.wait(pending)
