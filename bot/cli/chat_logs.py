"""Log lines in `parley chat`: held while a turn runs, shown between turns.

A warning written the moment it happens would land in the middle of a streaming answer or
after the `you>` prompt. `HeldLogHandler` keeps formatted records instead, and the chat
loop calls `show_held()` after each answer and before each prompt, so every log line
appears on its own line between turns (dimmed on a terminal), on stderr.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from typing import TextIO

MAX_HELD = 50  # lines kept between two turns; older ones are counted, not kept
DIM, PLAIN = "\x1b[2m", "\x1b[0m"


class HeldLogHandler(logging.Handler):
    """Formats records as they come and writes them to `stream` only on `show_held()`."""

    def __init__(self, stream: TextIO, *, dim: bool) -> None:
        super().__init__()
        self.stream = stream
        self._dim = dim
        self._lines: deque[str] = deque(maxlen=MAX_HELD)
        self._dropped = 0
        # Records come from worker threads too (asyncio.to_thread, the document reader).
        self._held = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        with self._held:
            if len(self._lines) == self._lines.maxlen:
                self._dropped += 1
            self._lines.append(line)

    def show_held(self) -> None:
        """Write the held lines, each on its own line, and forget them."""
        with self._held:
            lines, dropped = list(self._lines), self._dropped
            self._lines.clear()
            self._dropped = 0
        if dropped:
            lines.insert(0, f"({dropped} earlier log lines not shown)")
        for line in lines:
            self.stream.write(f"{DIM}{line}{PLAIN}\n" if self._dim else f"{line}\n")
        if lines:
            self.stream.flush()


def held_log_handler() -> HeldLogHandler | None:
    """The root logger's held handler, when `parley` set one up for the chat."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, HeldLogHandler):
            return handler
    return None
