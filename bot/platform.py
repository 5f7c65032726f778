"""How `parley serve` runs a platform adapter next to its HTTP server.

An adapter mounts its HTTP routes (Slack's `/slack/events`) on the shared aiohttp
application, starts its own connections (Socket Mode, the Discord gateway), reports
readiness for `/readyz`, and on shutdown stops taking new events first; the engine then
lets answers in flight finish.
"""

from __future__ import annotations

from typing import Protocol

from aiohttp import web


class Platform(Protocol):
    name: str

    def mount(self, app: web.Application) -> None:
        """Add HTTP routes; called before the server starts."""

    async def start(self) -> None:
        """Open connections; returns once they are under way (not when they end)."""

    def ready(self) -> bool:
        """Whether the platform connection is up, for `/readyz`."""

    async def stop_intake(self) -> None:
        """Stop accepting new events (graceful shutdown, first step)."""

    async def close(self) -> None:
        """Close connections once answers in flight are done."""
