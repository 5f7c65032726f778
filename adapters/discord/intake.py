"""Whether the Discord adapter takes new events (closed at shutdown)."""

from __future__ import annotations


class Intake:
    def __init__(self) -> None:
        self.open = True
